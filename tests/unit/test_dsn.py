"""Bounce (RFC 3464) and complaint (RFC 5965) reports, read from real-looking messages."""

from __future__ import annotations

import pytest

from leadflow.domain.errors import ValidationError
from leadflow.services.bounces import BounceReport, parse_report, report_from_json

# A Postfix hard bounce: the original message attached whole (message/rfc822).
POSTFIX_HARD = b"""\
Return-Path: <>
Received: by mx.acme.test (Postfix) id 4F1C2A0123; Mon,  2 Mar 2026 09:00:05 +0000 (UTC)
Date: Mon,  2 Mar 2026 09:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.acme.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: news@acme.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1C2A0123.1772442005/mx.acme.test"
Message-Id: <20260302090005.4F1C2A0123@mx.acme.test>

This is a MIME-encapsulated message.

--4F1C2A0123.1772442005/mx.acme.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.acme.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<gone@example.com>: host mx.example.com[192.0.2.10] said: 550 5.1.1
    <gone@example.com>: Recipient address rejected: User unknown (in reply to
    RCPT TO command)

--4F1C2A0123.1772442005/mx.acme.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.test
X-Postfix-Queue-ID: 4F1C2A0123
X-Postfix-Sender: rfc822; news@acme.test
Arrival-Date: Mon,  2 Mar 2026 09:00:04 +0000 (UTC)

Final-Recipient: rfc822; gone@example.com
Original-Recipient: rfc822;gone@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected:
    User unknown

--4F1C2A0123.1772442005/mx.acme.test
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: Acme News <news@acme.test>
To: gone@example.com
Subject: News for you
Message-ID: <run=3A5=3Awelcome=3A1@acme.test>
Date: Mon, 02 Mar 2026 09:00:00 +0000

Hello

--4F1C2A0123.1772442005/mx.acme.test--
"""

# A delayed (soft) notice for a full mailbox, with headers only (text/rfc822-headers).
SOFT_DELAYED = b"""\
From: Mail Delivery Subsystem <mailer-daemon@mx.acme.test>
To: news@acme.test
Subject: Delayed Mail (still being retried)
MIME-Version: 1.0
Content-Type: multipart/report; report-type="delivery-status"; boundary="b1"

--b1
Content-Type: text/plain

Your message has not been delivered yet; the server will keep trying.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.test

Final-Recipient: RFC822; Full@Example.com
Action: delayed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full
Will-Retry-Until: Thu, 5 Mar 2026 09:00:00 +0000

--b1
Content-Type: text/rfc822-headers

From: Acme News <news@acme.test>
To: full@example.com
Message-ID: <run=3A6=3Awelcome=3A1@acme.test>

--b1--
"""

# Two recipients in one report: one failed for good, one delivered.
MIXED = b"""\
From: MAILER-DAEMON@mx.acme.test
To: news@acme.test
Subject: Delivery Status Notification
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="zz"

--zz
Content-Type: text/plain

Report.
--zz
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.test
Original-Envelope-Id: env-77

Final-Recipient: rfc822; ok@example.com
Action: delivered
Status: 2.0.0

Final-Recipient: rfc822; blocked@example.org
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp; 550 5.7.1 Message rejected as spam

--zz--
"""

# An abuse report from a mailbox provider's feedback loop (ARF, RFC 5965).
ARF = b"""\
From: <staff@hotmail.example>
Date: Mon, 02 Mar 2026 10:00:00 +0000
Subject: complaint about message from 198.51.100.7
To: <abuse@acme.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
198.51.100.7 on Mon, 02 Mar 2026 09:00:00 +0000.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <news@acme.test>
Original-Rcpt-To: <Angry@Example.com>
Arrival-Date: Mon, 02 Mar 2026 09:00:00 +0000
Source-IP: 198.51.100.7

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <news@acme.test>
To: angry@example.com
Subject: News
Message-ID: <run=3A9=3Awelcome=3A1@acme.test>
Date: Mon, 02 Mar 2026 09:00:00 +0000

Buy now
--part1_13d.2e68ed54_boundary--
"""


def test_a_postfix_hard_bounce() -> None:
    [report] = parse_report(POSTFIX_HARD)
    assert report.address == "gone@example.com"
    assert report.kind == "hard"
    assert report.status == "5.1.1"
    assert "User unknown" in report.diagnostic and "\n" not in report.diagnostic
    assert report.message_id == "<run=3A5=3Awelcome=3A1@acme.test>"


def test_a_delayed_message_is_a_soft_bounce() -> None:
    [report] = parse_report(SOFT_DELAYED)
    assert report == BounceReport(
        "full@example.com",
        "soft",
        "4.2.2",
        "smtp; 452 4.2.2 Mailbox full",
        "<run=3A6=3Awelcome=3A1@acme.test>",
    )


def test_only_failed_recipients_are_reported() -> None:
    [report] = parse_report(MIXED)
    assert (report.address, report.kind, report.status) == ("blocked@example.org", "hard", "5.7.1")
    assert report.message_id == "env-77"


def test_an_arf_complaint() -> None:
    [report] = parse_report(ARF)
    assert report.address == "angry@example.com"
    assert report.kind == "complaint"
    assert report.diagnostic == "feedback-type: abuse"
    assert report.message_id == "<run=3A9=3Awelcome=3A1@acme.test>"


def test_a_message_that_is_no_report_is_refused() -> None:
    plain = b"From: a@b.test\nTo: c@d.test\nSubject: hi\n\nHello\n"
    with pytest.raises(ValidationError, match=r"bounce\.eml: not a bounce or complaint report"):
        parse_report(plain, "bounce.eml")
    other = (
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n"
        b"\n--x--\n"
    )
    with pytest.raises(ValidationError, match="disposition-notification"):
        parse_report(other)


def test_json_reports_are_checked_field_by_field() -> None:
    found = report_from_json({"address": " Ann@Example.com", "kind": "soft", "diagnostic": "full"})
    assert found == BounceReport("ann@example.com", "soft", "", "full", None)
    with pytest.raises(ValidationError, match="kind: 'bad' is not one of hard, soft, complaint"):
        report_from_json({"address": "a@b.test", "kind": "bad"})
    with pytest.raises(ValidationError, match="address: 'nobody' is not an email address"):
        report_from_json({"address": "nobody", "kind": "hard"})

"""Templates: files in templates/, sandboxed, with fallbacks; bad ones named by file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadflow.domain.errors import NotFound, ValidationError
from leadflow.ports import LeadView
from leadflow.services.templates import Templates, html_to_text

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def lead(**traits: object) -> LeadView:
    return LeadView(
        id=7, email="ann@example.com", phone="+15555550100", identities={},
        traits=dict(traits), stage="mql", fit_score=50.0, fit_grade="B",
        engagement_score=40.0, p_convert=None, account={"name": "Acme", "plan": "pro"},
        first_touch={}, created_at=NOW, first_seen_at=NOW, last_seen_at=NOW,
    )  # fmt: skip


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    (tmp_path / "templates").mkdir()
    return Templates(tmp_path / "templates")


def write(templates: Templates, name: str, text: str) -> Path:
    path = templates.folder / name
    path.write_text(text, encoding="utf-8")
    return path


WELCOME = """\
subject: Welcome {{ lead.first_name | default('there') }}
text: |
  Hi {{ lead.first_name | default('there') }} from {{ lead.company }},
  your role: {{ lead.traits.title }}.
html: |
  <p>Hi {{ lead.first_name | default('there') }} &amp; {{ account.name }}</p>
  <p>{{ lead.traits.note }}</p>
"""


def test_a_lead_with_every_value_gets_them_all(templates: Templates) -> None:
    write(templates, "welcome.email.yaml", WELCOME)
    context = templates.context_for(lead(first_name="Ann", title="CTO"), None, {})
    rendered = templates.render_email("welcome", context)
    assert rendered.subject == "Welcome Ann"
    assert "Hi Ann from Acme," in rendered.text
    assert "your role: CTO." in rendered.text
    assert rendered.html is not None and "<p>Hi Ann &amp; Acme</p>" in rendered.html


def test_missing_values_fall_back_and_never_print_none(templates: Templates) -> None:
    write(templates, "welcome.email.yaml", WELCOME)
    context = templates.context_for(lead(first_name=None, title=""), {}, {})
    rendered = templates.render_email("welcome", context)
    assert rendered.subject == "Welcome there"
    assert "None" not in rendered.text and "None" not in (rendered.html or "")
    assert "your role: ." in rendered.text


def test_html_is_escaped_and_text_is_not(templates: Templates) -> None:
    write(templates, "welcome.email.yaml", WELCOME)
    context = templates.context_for(lead(first_name="<b>Bo</b> & Co"), None, {})
    rendered = templates.render_email("welcome", context)
    assert "&lt;b&gt;Bo&lt;/b&gt; &amp; Co" in (rendered.html or "")
    assert "Hi <b>Bo</b> & Co" in rendered.text


def test_a_text_part_is_made_from_html_alone(templates: Templates) -> None:
    write(
        templates,
        "promo.email.yaml",
        "subject: Offer\nhtml: |\n  <html><head><style>p{}</style></head><body>\n"
        "  <h1>Hello</h1><p>See <a href='https://acme.test/x'>the offer</a>.</p>\n"
        "  <ul><li>one</li><li>two</li></ul></body></html>\n",
    )
    rendered = templates.render_email("promo", {})
    assert rendered.text.startswith("Hello\n")
    assert "See the offer (https://acme.test/x)." in rendered.text
    assert "- one" in rendered.text and "p{}" not in rendered.text


def test_an_offer_and_sms_render(templates: Templates) -> None:
    write(templates, "deal.sms.txt", "{{ lead.first_name }}: code {{ offer.code }}. STOP to end\n")
    context = templates.context_for(lead(first_name="Ann"), None, {"offer": {"code": "VIP-1"}})
    assert templates.render_sms("deal", context) == "Ann: code VIP-1. STOP to end"
    assert templates.names() == ["deal"]
    assert templates.names("email") == []


def test_a_syntax_error_names_the_file_and_line(templates: Templates) -> None:
    path = write(
        templates, "bad.email.yaml", "subject: Hi\ntext: |\n  line one\n  {{ lead.x + }}\n  more\n"
    )
    with pytest.raises(ValidationError, match=f"{path}:4: template syntax error"):
        templates.check("bad", "email")


def test_a_syntax_error_in_an_sms_names_its_line(templates: Templates) -> None:
    path = write(templates, "bad.sms.txt", "Hello\n{{ lead.first_name }\n")
    with pytest.raises(ValidationError, match=f"{path}:2: template syntax error"):
        templates.check("bad", "sms")


def test_an_unknown_variable_is_refused_with_its_line(templates: Templates) -> None:
    path = write(templates, "typo.email.yaml", "subject: Hi {{ lead.first_name }}\n"
                 "text: |\n  ok\n  {{ leed.first_name }}\n")  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        templates.check("typo", "email")
    assert f"{path}:4: unknown variable 'leed'" in caught.value.message


def test_a_missing_subject_is_refused(templates: Templates) -> None:
    path = write(templates, "nosubject.email.yaml", "text: hello\n")
    with pytest.raises(ValidationError, match=f"{path}:1: the email template has no subject"):
        templates.check("nosubject", "email")


def test_an_unknown_part_is_refused(templates: Templates) -> None:
    path = write(templates, "x.email.yaml", "subject: s\ntext: t\nbody: b\n")
    with pytest.raises(ValidationError, match=f"{path}:3: unknown key 'body'"):
        templates.check("x", "email")


def test_a_missing_template_is_named(templates: Templates) -> None:
    with pytest.raises(NotFound, match=r"nothere\.email\.yaml"):
        templates.check("nothere", "email")
    with pytest.raises(ValidationError, match="not a template name"):
        templates.check("../etc/passwd", "email")


def test_the_sandbox_refuses_python_internals(templates: Templates) -> None:
    write(templates, "evil.email.yaml", "subject: s\ntext: '{{ lead.__class__ }}'\n")
    with pytest.raises(ValidationError, match="'__class__' is not allowed"):
        templates.check("evil", "email")
    write(templates, "evil2.email.yaml", "subject: s\ntext: \"{{ lead['__class__'] }}\"\n")
    with pytest.raises(ValidationError, match="not allowed"):
        templates.render_email("evil2", templates.context_for(lead(), None, {}))


def test_html_to_text_keeps_paragraphs() -> None:
    text = html_to_text("<p>One</p><p>Two<br>Three</p>")
    assert text == "One\n\nTwo\nThree\n"

"""Identity keys and the merge rules: which lead a message belongs to."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.domain.identity import (
    IdentityKey,
    Resolution,
    keys_for,
    normalize_email,
    normalize_phone,
    previous_keys,
    resolve,
)


def uid(value: str) -> IdentityKey:
    return IdentityKey("user_id", value)


def anon(value: str) -> IdentityKey:
    return IdentityKey("anonymous_id", value)


def email(value: str) -> IdentityKey:
    return IdentityKey("email", value)


def phone(value: str) -> IdentityKey:
    return IdentityKey("phone", value)


def run(
    keys: list[IdentityKey],
    leads: Mapping[int, set[IdentityKey]],
    lookup_only: list[IdentityKey] | None = None,
) -> Resolution:
    """Resolve against a store described as {lead id: its keys}."""
    owners = {key: lead for lead, owned in leads.items() for key in owned}
    lead_keys = {lead: frozenset(owned) for lead, owned in leads.items()}
    return resolve(keys, owners, lead_keys, cause="identify", lookup_only=lookup_only or ())


# normalisation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  ann@example.com\t", "ann@example.com"),
        ("ANN.SMITH+news@Sub.Example.org", "ann.smith+news@sub.example.org"),
    ],
)
def test_email_is_trimmed_and_lowercased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["ann@example", "ann example@x.io", "@example.com", "a@b@c.io", "", None, 42, "x" * 330]
)
def test_invalid_emails_are_not_identities(raw: object) -> None:
    assert normalize_email(raw) is None


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(650) 253-0000", "US", "+16502530000"),
        ("650.253.0000", "us", "+16502530000"),
        (6502530000, "US", "+16502530000"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # an international number ignores region
        ("020 7946 0958", "GB", "+442079460958"),
        ("030 1234567", "DE", "+49301234567"),
    ],
)
def test_phone_numbers_become_e164(raw: object, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("650-253-0000", None),  # national number without a region
        ("12345", "US"),
        ("call me", "US"),
        ("", "US"),
        (True, "US"),
        ("650 253 0000", "XX"),
    ],
)
def test_invalid_phone_numbers_are_not_identities(raw: object, region: str | None) -> None:
    assert normalize_phone(raw, region) is None


def test_keys_for_orders_strongest_first_and_drops_invalid_values() -> None:
    keys = keys_for(
        user_id="u1",
        anonymous_id="a1",
        email=" Ann@Example.com ",
        phone="(650) 253-0000",
        region="US",
    )
    assert keys == [uid("u1"), email("ann@example.com"), anon("a1"), phone("+16502530000")]
    assert keys_for(anonymous_id="a1", email="not-an-email", phone="123") == [anon("a1")]
    assert [k.text for k in keys[:2]] == ["user_id:u1", "email:ann@example.com"]
    assert IdentityKey.from_text("email:a:b@c.io") == email("a:b@c.io")


def test_previous_id_may_be_a_user_id_or_an_anonymous_id() -> None:
    assert previous_keys("p1") == [uid("p1"), anon("p1")]
    assert previous_keys(None) == []


# resolve --------------------------------------------------------------------------------
def test_unknown_keys_make_a_new_lead_holding_all_of_them() -> None:
    res = run([uid("u1"), email("a@x.io"), anon("a1")], {})
    assert res.lead_id is None
    assert res.attach == [uid("u1"), email("a@x.io"), anon("a1")]
    assert (res.merges, res.conflicts) == ([], [])


def test_new_keys_attach_to_the_lead_that_owns_a_known_key() -> None:
    res = run([uid("u1"), email("a@x.io"), anon("a1")], {7: {anon("a1")}})
    assert res.lead_id == 7
    assert res.attach == [uid("u1"), email("a@x.io")]
    assert res.merges == []


def test_anonymous_lead_is_merged_into_the_known_lead() -> None:
    res = run([uid("u1"), anon("a2")], {1: {uid("u1"), email("a@x.io")}, 2: {anon("a2")}})
    assert res.lead_id == 1
    assert [(m.loser, m.survivor) for m in res.merges] == [(2, 1)]
    assert res.merges[0].cause == "identify via anonymous_id:a2"
    assert res.attach == []
    assert res.conflicts == []


def test_two_leads_with_different_emails_conflict_and_are_not_merged() -> None:
    leads = {1: {uid("u1"), email("a@x.io")}, 2: {anon("a2"), email("b@x.io")}}
    res = run([uid("u1"), anon("a2")], leads)
    assert res.lead_id == 1
    assert res.merges == []
    assert len(res.conflicts) == 1
    conflict = res.conflicts[0]
    assert (conflict.lead_a, conflict.lead_b, conflict.key) == (1, 2, anon("a2"))
    assert "different emails" in conflict.reason


def test_two_leads_with_different_user_ids_conflict() -> None:
    res = run([email("a@x.io"), anon("a2")], {1: {email("a@x.io")}, 2: {uid("u2"), anon("a2")}})
    assert [(m.loser, m.survivor) for m in res.merges] == [(2, 1)]  # lead 1 has no user id
    assert res.conflicts == []
    res = run(
        [email("a@x.io"), anon("a2")],
        {1: {email("a@x.io"), uid("u1")}, 2: {uid("u2"), anon("a2")}},
    )
    assert res.merges == []
    assert "different user ids" in res.conflicts[0].reason


def test_shared_browser_second_person_gets_a_lead_of_their_own() -> None:
    # a1 is the browser; lead 1 is Ann. Bob logs in on the same browser.
    leads = {1: {anon("a1"), uid("ann"), email("ann@x.io")}}
    res = run([uid("bob"), email("bob@x.io"), anon("a1")], leads)
    assert res.lead_id is None
    assert res.attach == [uid("bob"), email("bob@x.io")]  # the browser id stays with Ann
    assert (res.merges, res.conflicts) == ([], [])


def test_same_person_back_on_their_browser_is_not_a_new_lead() -> None:
    leads = {1: {anon("a1"), uid("ann"), email("ann@x.io")}}
    res = run([uid("ann"), email("ANN@x.io".lower()), anon("a1")], leads)
    assert res.lead_id == 1
    assert (res.attach, res.merges, res.conflicts) == ([], [], [])


def test_second_user_id_on_a_known_lead_is_a_conflict_not_an_attach() -> None:
    res = run([uid("u2"), email("a@x.io")], {1: {uid("u1"), email("a@x.io")}})
    assert res.lead_id == 1
    assert res.attach == []
    assert [(c.lead_a, c.lead_b, c.key) for c in res.conflicts] == [(1, 1, uid("u2"))]


def test_alias_previous_id_finds_a_lead_by_anonymous_id() -> None:
    res = run([uid("u9")], {4: {anon("old-id")}}, lookup_only=previous_keys("old-id"))
    assert res.lead_id == 4
    assert res.attach == [uid("u9")]


def test_alias_previous_id_finds_a_lead_by_user_id_but_keeps_one_user_id_per_lead() -> None:
    res = run([uid("u9")], {4: {uid("old-id")}}, lookup_only=previous_keys("old-id"))
    assert res.lead_id == 4
    assert res.attach == []
    assert [(c.lead_a, c.key, c.reason) for c in res.conflicts] == [
        (4, uid("u9"), "second user id u9")
    ]


def test_alias_joins_an_anonymous_lead_to_a_known_one() -> None:
    leads = {1: {uid("u9"), email("z@x.io")}, 2: {anon("old-id")}}
    res = run([uid("u9")], leads, lookup_only=previous_keys("old-id"))
    assert res.lead_id == 1
    assert [(m.loser, m.survivor) for m in res.merges] == [(2, 1)]
    assert res.merges[0].cause == "identify via anonymous_id:old-id"


def test_alias_previous_id_is_never_attached_when_unknown() -> None:
    res = run([uid("u9")], {}, lookup_only=previous_keys("old-id"))
    assert res.lead_id is None
    assert res.attach == [uid("u9")]


def test_phone_never_merges_and_is_never_moved() -> None:
    leads = {1: {uid("u1"), phone("+16502530000")}}
    res = run([anon("a5"), phone("+16502530000")], leads)
    assert res.lead_id is None  # a new lead, not lead 1
    assert res.attach == [anon("a5")]  # the number stays with its lead
    res = run([uid("u2"), phone("+16502530000")], {**leads, 2: {uid("u2")}})
    assert res.lead_id == 2
    assert res.merges == []
    assert res.attach == []


def test_a_phone_nobody_owns_is_attached() -> None:
    res = run([uid("u1"), phone("+16502530000")], {1: {uid("u1")}})
    assert res.attach == [phone("+16502530000")]


# property: merges never join leads whose strong identities disagree ------------------------
USERS = ["u1", "u2", "u3"]
ANONS = ["a1", "a2", "a3", "a4"]
EMAILS = ["x@a.io", "y@a.io", "z@a.io"]
PHONES = ["+16502530000", "+16502530001"]

message_keys = st.builds(
    lambda user, an, mail, tel, prev: (
        keys_for(user_id=user, anonymous_id=an, email=mail, phone=tel),
        previous_keys(prev),
    ),
    st.none() | st.sampled_from(USERS),
    st.none() | st.sampled_from(ANONS),
    st.none() | st.sampled_from(EMAILS),
    st.none() | st.sampled_from(PHONES),
    st.none() | st.sampled_from(USERS + ANONS),
).filter(lambda m: bool(m[0]))


@settings(max_examples=300, deadline=None)
@given(st.lists(message_keys, min_size=1, max_size=15))
def test_resolution_never_merges_disagreeing_leads(
    messages: list[tuple[list[IdentityKey], list[IdentityKey]]],
) -> None:
    leads: dict[int, set[IdentityKey]] = {}
    next_id = 1
    for keys, lookup in messages:
        owners = {key: lead for lead, owned in leads.items() for key in owned}
        res = resolve(
            keys,
            owners,
            {lead: frozenset(owned) for lead, owned in leads.items()},
            "identify",
            lookup_only=lookup,
        )
        lead = res.lead_id
        if lead is None:
            lead, next_id = next_id, next_id + 1
            leads[lead] = set()
        joined = leads[lead]
        for merge in res.merges:
            assert merge.survivor == lead
            loser = leads.pop(merge.loser)
            for kind in ("email", "user_id"):
                # two leads never share a key, so the sets must not both be non-empty
                ours = {k for k in joined if k.kind == kind}
                theirs = {k for k in loser if k.kind == kind}
                assert not (ours and theirs), (kind, joined, loser)
            assert "phone:" not in merge.cause
            joined |= loser
        for key in res.attach:
            assert key not in owners, "only unowned keys are attached"
            assert key not in lookup or key in keys
            joined.add(key)
        for conflict in res.conflicts:
            assert conflict.lead_a == lead
        # every lead holds at most one user id, and each key belongs to one lead
        assert all(sum(k.kind == "user_id" for k in owned) <= 1 for owned in leads.values())
        every = [key for owned in leads.values() for key in owned]
        assert len(every) == len(set(every))

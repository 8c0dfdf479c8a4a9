"""The scoring model as a user writes it in leadflow.yaml: what loads, what is refused (with
the file, the line and the field), and which changes make a new model version."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from leadflow.domain.errors import ConfigError
from leadflow.services.models import ScoringModel, load_model, load_model_text

MODEL = """\
# a small model for the tests
scoring:
  engagement:
    groups:
      web: {ceiling: 20}
    rules:
      - id: pricing
        description: Looked at pricing
        match: {type: page, path: ["/pricing*"]}
        points: 10
        half_life: 7d
        cap: 15
        daily_limit: 2
        group: web
      - id: demo
        match: {event: Demo Requested}
        points: 40
        half_life: none
  fit:
    rules:
      - id: industry
        when: [{field: traits.industry, op: in, value: [software]}]
        points: 50
      - id: free-mail
        when: [{field: email_domain_type, op: eq, value: free}]
        points: -20
    grades: {A: 40, B: 20, C: 10}
    free_mail_domains: [Gmail.com]
lifecycle:
  mql_policy: >-
    fit.grade in ('A', 'B') and engagement >= 15
    or happened('Demo Requested', within='3d')
  sales:
    sla: 12h
    accept_reasons: [meets_criteria]
    reject_reasons: [not_a_fit, bad_timing]
"""


def load(text: str = MODEL) -> ScoringModel:
    return load_model_text(text, "leadflow.yaml")


def changed(old: str, new: str, text: str = MODEL) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, marker: str) -> int:
    """The 1-based line of the file on which ``marker`` appears."""
    [number] = [n for n, line in enumerate(text.splitlines(), 1) if marker in line]
    return number


def lines_of_section(text: str, first: str, last: str) -> range:
    """The lines from the one holding ``first`` to the one holding ``last``."""
    return range(line_of(text, first), line_of(text, last) + 1)


def place(message: str) -> tuple[int, str]:
    """The line number and the field path a refusal starts with (``file:line: field: ...``)."""
    origin, line, field, _rest = message.split(":", 3)
    assert origin == "leadflow.yaml", message
    return int(line), field.strip()


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.message


# --- what loads ---------------------------------------------------------------------------
def test_a_valid_model_compiles_to_its_rules_policy_and_sales_step() -> None:
    model = load()
    pricing, demo = model.rules.engagement
    assert (pricing.id, pricing.points, pricing.half_life) == ("pricing", 10, 7 * 86_400)
    assert (pricing.cap, pricing.daily_limit, pricing.group) == (15, 2, "web")
    assert pricing.description == "Looked at pricing"
    assert (demo.half_life, demo.cap, demo.group) == (None, None, None)
    assert dict(model.rules.groups) == {"web": 20}
    assert model.rules.grades == (("A", 40), ("B", 20), ("C", 10))
    assert model.rules.free_mail_domains == {"gmail.com"}
    assert model.sales.accept_reasons == ("meets_criteria",)
    assert model.sales.reject_reasons == ("not_a_fit", "bad_timing")
    assert model.sales.sla == timedelta(hours=12)
    assert model.sales.recycle_when_cold is True
    assert model.watched_events == ("Demo Requested",)
    assert model.policy.source == (
        "fit.grade in ('A', 'B') and engagement >= 15 or happened('Demo Requested', within='3d')"
    )
    assert len(model.version) == 12


def test_the_default_model_is_used_when_the_file_has_no_scoring_section(tmp_path: Path) -> None:
    default = load_model(None)
    assert default.rules.rule("pricing-page") is not None
    config = tmp_path / "leadflow.yaml"
    config.write_text("database_url: sqlite:///x.db\n")
    assert load_model(config).version == default.version
    config.write_text(MODEL)
    assert load_model(config).version == load().version


def test_the_file_path_is_named_in_errors(tmp_path: Path) -> None:
    config = tmp_path / "leadflow.yaml"
    config.write_text(changed("points: 40", "points: lots"))
    with pytest.raises(ConfigError) as caught:
        load_model(config)
    line = line_of(MODEL, "points: 40")
    assert caught.value.message.startswith(f"{config}:{line}: scoring.engagement.rules[1].points: ")


# --- what is refused ----------------------------------------------------------------------
def test_unknown_field_names_the_line_and_the_field_path() -> None:
    text = changed("        group: web\n", "        group: web\n        colour: red\n")
    message = refusal(text)
    line = line_of(text, "colour: red")
    assert (
        message == f"leadflow.yaml:{line}: scoring.engagement.rules[0].colour: unknown key 'colour'"
    )


def test_a_misspelled_key_is_named_with_the_key_it_was_meant_to_be() -> None:
    text = changed("        points: 40\n", "        pionts: 40\n")
    message = refusal(text)
    line = line_of(text, "pionts: 40")
    assert message == (
        f"leadflow.yaml:{line}: scoring.engagement.rules[1].pionts: "
        "unknown key 'pionts' (did you mean 'points'?)"
    )


def test_unknown_field_in_a_fit_condition() -> None:
    text = changed(
        "op: eq, value: free}", "op: eq, value: free, case: upper}"
    )  # a key the condition does not have
    message = refusal(text)
    line = line_of(text, "case: upper")
    assert message.startswith(f"leadflow.yaml:{line}: scoring.fit.rules[1].when[0].case: ")


@pytest.mark.parametrize("bad", ["7 days", "d7", "1y", "soon", "-7d"])
def test_bad_half_life_duration(bad: str) -> None:
    text = changed("half_life: 7d", f"half_life: {bad}")
    message = refusal(text)
    line = line_of(text, f"half_life: {bad}")
    assert message.startswith(f"leadflow.yaml:{line}: scoring.engagement.rules[0].half_life: ")
    assert f"'{bad}' is not a duration like '30m', '12h', '7d' or '2w'" in message


def test_half_life_written_as_a_bare_number_is_refused() -> None:
    text = changed("half_life: 7d", "half_life: 7")
    assert place(refusal(text)) == (
        line_of(text, "half_life: 7"),
        "scoring.engagement.rules[0].half_life",
    )


def test_bad_sla_duration() -> None:
    text = changed("sla: 12h", "sla: a day")
    message = refusal(text)
    assert message.startswith(f"leadflow.yaml:{line_of(text, 'sla: a day')}: lifecycle.sales.sla: ")
    assert "'a day' is not a duration" in message


def test_zero_half_life_is_refused() -> None:
    """A half-life of zero would divide by zero the first time a score is read."""
    text = changed("half_life: 7d", "half_life: 0d")
    message = refusal(text)
    assert message.startswith(
        f"leadflow.yaml:{line_of(text, 'half_life: 0d')}: scoring.engagement.rules[0].half_life: "
    )


def test_unknown_group() -> None:
    message = refusal(changed("group: web", "group: webb"))
    line, field = place(message)
    assert field == "scoring.engagement"
    assert line in lines_of_section(MODEL, "engagement:", "half_life: none")
    assert "rule 'pricing': unknown group 'webb'" in message


def test_duplicate_rule_id() -> None:
    message = refusal(changed("id: demo", "id: pricing"))
    line, field = place(message)
    assert field == "scoring.engagement"
    assert line in lines_of_section(MODEL, "engagement:", "half_life: none")
    assert "rule id 'pricing' is used twice" in message


def test_grades_must_fall_from_a_to_c() -> None:
    message = refusal(changed("{A: 40, B: 20, C: 10}", "{A: 40, B: 10, C: 20}"))
    line, field = place(message)
    assert field == "scoring.fit"
    assert line in lines_of_section(MODEL, "  fit:", "free_mail_domains")
    assert "grades: thresholds must fall from A to C, got A=40.0 B=10.0 C=20.0" in message


def test_grades_need_all_three_thresholds() -> None:
    message = refusal(changed("{A: 40, B: 20, C: 10}", "{A: 40, B: 20}"))
    assert "grades: missing thresholds for C" in message


def test_grade_a_must_be_reachable_by_the_fit_rules() -> None:
    message = refusal(changed("{A: 40, B: 20, C: 10}", "{A: 60, B: 20, C: 10}"))
    line, field = place(message)
    assert field == "scoring.fit"
    assert line in lines_of_section(MODEL, "  fit:", "free_mail_domains")
    assert "grades: A needs a fit score of 60.0, but the fit rules add up to 50.0" in message


def test_bad_policy_names_the_line_of_mql_policy_and_the_column() -> None:
    message = refusal(changed("engagement >= 15", "engagment >= 15"))
    line = line_of(MODEL, "mql_policy:")
    assert message.startswith(
        f"leadflow.yaml:{line}: lifecycle.mql_policy: policy, column 29: "
        "unknown name 'engagment' (did you mean 'engagement'?)"
    )
    assert "^^^^^^^^^" in message  # the place is underlined


def test_policy_naming_an_unknown_group() -> None:
    message = refusal(changed("engagement >= 15", "groups.webb >= 5"))
    assert "lifecycle.mql_policy: policy, column 29: unknown score group 'webb'" in message


def test_policy_threshold_the_rules_can_never_reach() -> None:
    # pricing is capped at 15 and grouped under a ceiling of 20; demo is uncapped, so remove it
    text = changed("engagement >= 15", "engagement >= 25")
    text = text.replace("        half_life: none\n", "        half_life: none\n        cap: 4\n")
    message = refusal(text)
    assert message == (
        f"leadflow.yaml:{line_of(text, 'mql_policy:')}: lifecycle.mql_policy: engagement can "
        "reach at most 19, so the threshold 25 can never be met"
    )


def test_unknown_op() -> None:
    text = changed("op: in,", "op: inside,")
    message = refusal(text)
    assert message.startswith(
        f"leadflow.yaml:{line_of(text, 'op: inside')}: scoring.fit.rules[0].when[0].op: "
        "unknown op 'inside'; one of between, contains"
    )


@pytest.mark.parametrize("value", ["5", "[5]", "[1, 2, 3]", "[5000, 50]", "[low, high]", "[a, 5]"])
def test_between_needs_a_low_and_a_high_number(value: str) -> None:
    text = changed("op: in, value: [software]", f"op: between, value: {value}")
    message = refusal(text)
    line = line_of(text, "op: between")
    assert message.startswith(f"leadflow.yaml:{line}: scoring.fit.rules[0].when[0]: ")
    assert "op 'between' needs [low, high]" in message


def test_between_with_text_bounds_is_refused_at_load_not_when_scoring() -> None:
    """Text bounds used to load and then fail with a TypeError on the first numeric trait."""
    message = refusal(changed("op: in, value: [software]", "op: between, value: [a, z]"))
    assert "op 'between' needs [low, high]" in message


@pytest.mark.parametrize(
    ("op", "value", "problem"),
    [("in", "software", "op 'in' needs a list value"), ("gt", "ten", "op 'gt' needs a number")],
)
def test_ops_need_values_of_their_kind(op: str, value: str, problem: str) -> None:
    message = refusal(changed("op: in, value: [software]", f"op: {op}, value: {value}"))
    assert problem in message


def test_a_rule_needs_something_to_match() -> None:
    message = refusal(changed("match: {event: Demo Requested}", "match: {}"))
    line = line_of(MODEL, "match: {event: Demo Requested}")
    assert message.startswith(f"leadflow.yaml:{line}: scoring.engagement.rules[1].match: ")
    assert "match needs at least one of type, event, path, where" in message


def test_reason_lists_must_not_be_empty() -> None:
    message = refusal(changed("accept_reasons: [meets_criteria]", "accept_reasons: []"))
    assert "lifecycle.sales.accept_reasons:" in message


def test_yaml_that_does_not_parse_names_the_line() -> None:
    text = changed("points: 40", "points: [40")
    message = refusal(text)
    assert message.startswith("leadflow.yaml:")
    assert "not valid YAML" in message


# --- versions -----------------------------------------------------------------------------
REWRITTEN = """\
lifecycle:
  sales:
    reject_reasons: [not_a_fit, bad_timing]   # other comments
    accept_reasons: [meets_criteria]
    sla: 12h
  mql_policy: >-
    fit.grade in ('A', 'B') and
    engagement >= 15 or happened('Demo Requested', within='3d')
scoring:
  fit:
    free_mail_domains: [Gmail.com]
    grades: {C: 10, B: 20, A: 40}
    rules:
      - points: 50
        id: industry
        when:
          - field: traits.industry
            value: [software]
            op: in
      - {id: free-mail, points: -20, when: [{field: email_domain_type, op: eq, value: free}]}
  engagement:
    rules:
      - group: web
        daily_limit: 2
        cap: 15
        half_life: 7d
        points: 10
        match:
          path: ["/pricing*"]
          type: page
        description: Looked at pricing
        id: pricing
      - {id: demo, match: {event: Demo Requested}, points: 40, half_life: none}
    groups: {web: {ceiling: 20}}
"""


def test_same_model_written_differently_is_the_same_version() -> None:
    assert load(REWRITTEN).version == load().version


def test_a_changed_rule_is_a_new_version() -> None:
    version = load().version
    assert load(changed("points: 40", "points: 45")).version != version
    assert load(changed("half_life: 7d", "half_life: 8d")).version != version
    assert load(changed("within='3d'", "within='4d'")).version != version
    assert load(changed("sla: 12h", "sla: 24h")).version != version

"""The MQL policy: a small, safe, explainable expression language (see docs/policy.md).

    fit.grade in ('A', 'B') and engagement >= 50 or happened('Demo Requested', within='7d')

:func:`parse_policy` reads the text once (:mod:`leadflow.domain.policy_parse`), checks the
types it can know, and compiles the tree into plain closures; :meth:`Policy.evaluate` then
runs them against the :class:`Facts` of one lead. Nothing of the user's text is ever run as
Python. Time is an argument (``Facts.now``), never read from a clock.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from leadflow.domain.policy_parse import (
    GRADES,
    BoolOp,
    Compare,
    Happened,
    ListOf,
    Literal,
    Node,
    Not,
    PolicyError,
    Token,
    Var,
    Window,
    parse,
    suggest,
)

__all__ = ["Facts", "Policy", "PolicyError", "Verdict", "Window", "parse_policy"]

HORIZON = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the policy sees about one lead, at one instant."""

    fit_grade: str | None
    fit_score: float
    engagement: float
    groups: Mapping[str, float]  # a group missing here scores 0
    p_convert: float | None
    stage: str
    traits: Mapping[str, Any]
    account: Mapping[str, Any]
    now: datetime
    recent: Mapping[str, Sequence[datetime]]  # event name -> timestamps, any order


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer, and the text of each top-level ``or`` branch that made it true."""

    result: bool
    fired: tuple[str, ...]


FALSE = Verdict(False, ())


# --- static types -------------------------------------------------------------------------
class Kind(enum.Flag):
    """What a value may be at run time."""

    NUMBER = enum.auto()
    TEXT = enum.auto()
    BOOL = enum.auto()
    NONE = enum.auto()
    OTHER = enum.auto()  # JSON lists and objects in traits


ANY = Kind.NUMBER | Kind.TEXT | Kind.BOOL | Kind.NONE | Kind.OTHER
ORDERED = Kind.NUMBER | Kind.TEXT
KINDS = {
    "fit.grade": Kind.TEXT | Kind.NONE,
    "fit.score": Kind.NUMBER,
    "engagement": Kind.NUMBER,
    "p_convert": Kind.NUMBER | Kind.NONE,
    "stage": Kind.TEXT,
}


NAMESPACES = ("groups", "traits", "account")
NAMES_HELP = (
    "names are fit.grade, fit.score, engagement, p_convert, stage, groups.<name>, "
    "traits.<name> and account.<name>"
)
EXAMPLES = {"groups": "webinar", "traits": "plan", "account": "industry"}


def kind_of(node: Node) -> Kind:
    if isinstance(node, Var):
        if node.path in KINDS:
            return KINDS[node.path]
        return Kind.NUMBER if node.path.startswith("groups.") else ANY
    if isinstance(node, Literal):
        value = node.value
        if value is None or isinstance(value, bool):
            return Kind.NONE if value is None else Kind.BOOL
        return Kind.TEXT if isinstance(value, str) else Kind.NUMBER
    return Kind.OTHER if isinstance(node, ListOf) else Kind.BOOL


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, in source order."""
    yield node
    children: tuple[Node, ...] = ()
    if isinstance(node, Compare | BoolOp):
        children = node.operands
    elif isinstance(node, Not):
        children = (node.operand,)
    elif isinstance(node, ListOf):
        children = node.items
    for child in children:
        yield from walk(child)


class Checker:
    """The unknown names and the type errors that can be known before any lead is seen."""

    def __init__(self, source: str, groups: Collection[str]) -> None:
        self.source = source
        self.groups = frozenset(groups)

    def check(self, root: Node) -> None:
        for var in walk(root):
            if isinstance(var, Var):
                self.resolve(var)
        self.condition(root)
        for node in walk(root):
            if isinstance(node, BoolOp):
                for operand in node.operands:
                    self.condition(operand)
            elif isinstance(node, Not):
                self.condition(node.operand)
            elif isinstance(node, Compare):
                for i, op in enumerate(node.ops):
                    self.pair(node.operands[i], op, node.operands[i + 1])

    def fail(self, problem: str, node: Node | Token) -> PolicyError:
        return PolicyError(problem, self.source, node.start, node.end)

    def resolve(self, var: Var) -> None:
        parts = var.path.split(".")
        if any(part.startswith("__") for part in parts):
            raise self.fail("names starting with '__' are not allowed", var)
        if var.path in KINDS or (parts[0] in NAMESPACES and len(parts) == 2):
            if parts[0] == "groups" and self.groups and parts[1] not in self.groups:
                hint = suggest(parts[1], self.groups)
                known = ", ".join(sorted(self.groups))
                raise self.fail(f"unknown score group '{parts[1]}'{hint}; groups: {known}", var)
            return
        raise self.fail(self.unknown(parts), var)

    def unknown(self, parts: list[str]) -> str:
        path, head = ".".join(parts), parts[0]
        if head in NAMESPACES:
            if len(parts) == 1:
                return f"'{head}' needs a name after it, e.g. {head}.{EXAMPLES[head]}"
            return f"'{path}': only one name may follow '{head}.'"
        if path == "fit":
            return "'fit' needs a field: fit.grade or fit.score"
        if head in ("engagement", "p_convert", "stage"):
            return f"'{head}' has no fields: attribute access is not supported"
        if path == "happened":
            return "happened needs its arguments, e.g. happened('Demo Requested', within='7d')"
        candidates = [*KINDS, *NAMESPACES, "True", "False", "None", "happened"]
        candidates += [f"groups.{group}" for group in self.groups]
        if len(parts) == 2:
            candidates += [f"{space}.{parts[1]}" for space in NAMESPACES]
        hint = suggest(path, candidates)
        return f"unknown name '{path}'{hint or '; ' + NAMES_HELP}"

    def describe(self, node: Node) -> str:
        text = self.source[node.start : node.end]
        kind = kind_of(node)
        if not isinstance(node, Var | Literal):
            return "a condition"
        if kind in (Kind.NONE, Kind.BOOL, ANY):
            return text
        return f"{text} ({'a number' if kind & Kind.NUMBER else 'text'})"

    def condition(self, node: Node) -> None:
        """Refuse a node that cannot be true or false by itself (``engagement and ...``)."""
        kind = kind_of(node)
        if kind in (Kind.BOOL, ANY):
            return
        text = self.source[node.start : node.end]
        if isinstance(node, ListOf):
            problem = "a list is not a condition; use it after 'in'"
        elif isinstance(node, Literal):
            problem = f"{text} is a value, not a condition"
        elif kind & Kind.NUMBER:
            problem = f"{text} is a number, not a condition: compare it, e.g. {text} >= 50"
        else:
            problem = f"{text} is text, not a condition: compare it, e.g. {text} == 'A'"
        raise self.fail(problem, node)

    def pair(self, left: Node, op: Token, right: Node) -> None:
        for side in (left, right):
            if isinstance(side, ListOf) and (side is left or op.text not in ("in", "not in")):
                raise self.fail("a list can only follow 'in' or 'not in'", side)
        if op.text in ("in", "not in"):
            self.membership(left, op, right)
            return
        lk, rk = kind_of(left), kind_of(right)
        if op.text not in ("==", "!="):
            for side, kind in ((left, lk), (right, rk)):
                if not kind & ORDERED:
                    problem = f"'{op.text}' compares numbers or text; {self.describe(side)} "
                    raise self.fail(problem + "cannot be ordered", side)
            lk, rk = lk & ORDERED, rk & ORDERED
        if not lk & rk:
            raise self.fail(f"cannot compare {self.describe(left)} with {self.describe(right)}", op)
        self.grade(left, right)
        self.grade(right, left)

    def membership(self, left: Node, op: Token, right: Node) -> None:
        if not isinstance(right, ListOf):
            value = right.value if isinstance(right, Literal) else None
            single = isinstance(value, str)
            hint = f"write ({value!r},) or [{value!r}]" if single else "e.g. ('A', 'B')"
            raise self.fail(f"'{op.text}' needs a list of values: {hint}", right)
        wanted = kind_of(left) & ~Kind.NONE
        for item in right.items:
            if item.value is None:
                raise self.fail("None never matches in a list; write == None", item)
            if not kind_of(item) & wanted:
                raise self.fail(
                    f"cannot compare {self.describe(left)} with {self.describe(item)}", item
                )
            self.grade(left, item)

    def grade(self, var: Node, other: Node) -> None:
        if not (isinstance(var, Var) and var.path == "fit.grade"):
            return
        if (
            isinstance(other, Literal)
            and isinstance(other.value, str)
            and other.value not in GRADES
        ):
            hint = suggest(other.value, GRADES)
            problem = f"{other.value!r} is not a fit grade{hint}: grades are A, B, C and D"
            raise self.fail(problem, other)


# --- compiled to closures -----------------------------------------------------------------
Value = Callable[[Facts], Any]
Condition = Callable[[Facts], bool]
Relation = Callable[[Any, Any], bool]

GETTERS: dict[str, Value] = {
    "fit.grade": lambda f: f.fit_grade,
    "fit.score": lambda f: f.fit_score,
    "engagement": lambda f: f.engagement,
    "p_convert": lambda f: f.p_convert,
    "stage": lambda f: f.stage,
}
ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def getter(path: str) -> Value:
    if path in GETTERS:
        return GETTERS[path]
    space, _, name = path.partition(".")
    if space == "groups":
        return lambda f: f.groups.get(name, 0.0)
    if space == "traits":
        return lambda f: f.traits.get(name)
    return lambda f: f.account.get(name)


def constant_of(node: Literal | ListOf) -> Any:
    return tuple(item.value for item in node.items) if isinstance(node, ListOf) else node.value


def value_of(node: Node) -> Value:
    if isinstance(node, Literal | ListOf):
        constant = constant_of(node)
        return lambda f: constant
    return getter(node.path) if isinstance(node, Var) else condition_of(node)


def condition_of(node: Node) -> Condition:
    """A closure that is True or False for the facts."""
    if isinstance(node, Compare):
        return compare(node)
    if isinstance(node, BoolOp):
        return bool_op(node)
    if isinstance(node, Not):
        inner = condition_of(node.operand)
        return lambda f: not inner(f)
    if isinstance(node, Happened):
        return happened(node.window)
    value = value_of(node)  # True, False, or traits./account. values by their truth
    return lambda f: bool(value(f))


def bool_op(node: BoolOp) -> Condition:
    tests = tuple(condition_of(o) for o in node.operands)
    if len(tests) == 2:
        first, second = tests
        if node.op == "and":
            return lambda f: first(f) and second(f)
        return lambda f: first(f) or second(f)
    if node.op == "and":
        return lambda f: all(t(f) for t in tests)
    return lambda f: any(t(f) for t in tests)


def happened(window: Window) -> Condition:
    """At least ``times`` events named ``event`` less than ``within`` old (or in the future)."""
    event, within, times = window.event, window.within, window.times

    def test(f: Facts) -> bool:
        stamps = f.recent.get(event)
        if not stamps:
            return False
        cutoff = f.now - within
        count = 0
        for stamp in stamps:
            if stamp > cutoff:
                count += 1
                if count >= times:
                    return True
        return False

    return test


def relation(op: str, right: Node) -> Relation:
    """``(left value, right value) -> bool``: None is never ordered, nor in a list."""
    if op in ("in", "not in"):
        assert isinstance(right, ListOf)
        values = tuple(item.value for item in right.items)
        members, negate = frozenset(values), op == "not in"

        def member(a: Any, _: Any) -> bool:
            if a is None:
                return negate
            try:
                return (a in members) != negate
            except TypeError:  # a JSON list or object: unhashable
                return (a in values) != negate

        return member
    if op in ("==", "!="):
        return operator.eq if op == "==" else operator.ne
    order = ORDER[op]

    def ordered(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return bool(order(a, b))
        except TypeError:  # e.g. a trait holding text compared with a number
            return False

    return ordered


def compare(node: Compare) -> Condition:
    values = [value_of(operand) for operand in node.operands]
    relations = [
        relation(op.text, right) for op, right in zip(node.ops, node.operands[1:], strict=True)
    ]
    if len(relations) == 1:
        left, right, rel = values[0], node.operands[1], relations[0]
        if isinstance(right, Literal | ListOf):
            constant = constant_of(right)
            op = node.ops[0].text
            if op in ORDER and kind_of(node.operands[0]) == Kind.NUMBER == kind_of(right):
                order = ORDER[op]  # never None, always numbers: no guard needed
                return lambda f: order(left(f), constant)
            return lambda f: rel(left(f), constant)
        other = values[1]
        return lambda f: rel(left(f), other(f))

    def chain(f: Facts) -> bool:
        a = values[0](f)
        for rel, value in zip(relations, values[1:], strict=True):
            b = value(f)
            if not rel(a, b):
                return False
            a = b
        return True

    return chain


# --- the policy ---------------------------------------------------------------------------
class Policy:
    """A checked and compiled MQL policy; build it with :func:`parse_policy`."""

    def __init__(self, source: str, root: Node) -> None:
        self.source = source
        self._root = root
        top = root.operands if isinstance(root, BoolOp) and root.op == "or" else (root,)
        self._branches = tuple((condition_of(node), source[node.start : node.end]) for node in top)
        self._whole = Verdict(True, (source[root.start : root.end],))
        self._first = self._branches[0][0]
        self._windows = tuple(
            dict.fromkeys(n.window for n in walk(root) if isinstance(n, Happened))
        )
        self._thresholds = thresholds(root)
        self._floors = floors(root)
        self._decaying = tuple(
            n for n in walk(root) if isinstance(n, Compare) and decaying(n.operands)
        )
        self._decaying_conditions = tuple(condition_of(n) for n in self._decaying)
        self._crossing_points = crossing_points(self._decaying)
        # a falling score flips `engagement >= 45` at most once, `5 <= x < 9` up to twice
        self._single_flip = all(
            len(n.ops) == 1 and n.ops[0].text in _RAISES for n in self._decaying
        )

    def __repr__(self) -> str:
        return f"Policy({self.source!r})"

    def evaluate(self, facts: Facts) -> Verdict:
        """The answer for one lead, with the top-level branches that made it true."""
        if len(self._branches) == 1:
            return self._whole if self._first(facts) else FALSE
        fired = tuple([text for holds, text in self._branches if holds(facts)])
        return Verdict(True, fired) if fired else FALSE

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every distinct happened() reference, in source order."""
        return self._windows

    @property
    def floors(self) -> tuple[tuple[str, float], ...]:
        """The (variable, number) pairs a variable must reach (``>=``, ``>``)."""
        return self._floors

    @property
    def thresholds(self) -> tuple[tuple[str, float], ...]:
        """Every distinct (variable, number) the policy compares, in source order."""
        return self._thresholds

    def next_change(
        self,
        facts: Facts,
        decay: Callable[[str, datetime], float],
        monotone: bool = False,
        bounds: Callable[[str], tuple[float, float]] | None = None,
    ) -> datetime | None:
        """The earliest instant after ``facts.now`` at which some part of the policy may
        change its value with no new event: a happened() window that stops holding, or a
        decaying score (``engagement``, ``groups.<name>``) that crosses a number it is
        compared with (within a year, found to the second by sampling ``decay(variable,
        at)`` and bisecting). None when nothing changes by itself. ``monotone``: the scores
        can only fall with time (no decaying negative points), so each plain comparison
        (``>=``, ``>``, ``<=``, ``<`` with one number) changes at most once: one look at the
        horizon tells whether anything changes at all (a band such as ``5 <= x < 9``, or
        ``==``, is sampled all the same).
        ``bounds(variable)``: the lowest and highest a decaying score can be from now on; when
        no number it is compared with lies between them, nothing is sampled."""
        found = [expiry(w, facts) for w in self._windows]
        if bounds is None or self._may_cross(bounds):
            found.append(self._crossing(facts, decay, monotone))
        return min((t for t in found if t is not None), default=None)

    def _may_cross(self, bounds: Callable[[str], tuple[float, float]]) -> bool:
        """False when no decaying score can reach a number it is compared with: each
        comparison then keeps its value for good."""
        if self._crossing_points is None:
            return True
        for path, points in self._crossing_points.items():
            low, high = bounds(path)
            if any(low - EPSILON <= n <= high + EPSILON for n in points):
                return True
        return False

    def _crossing(
        self, facts: Facts, decay: Callable[[str, datetime], float], monotone: bool
    ) -> datetime | None:
        if not self._decaying:
            return None
        conditions = self._decaying_conditions
        paths = sorted({o.path for n in self._decaying for o in n.operands if isinstance(o, Var)})
        paths = [p for p in paths if decaying_path(p)]
        before = [condition(facts) for condition in conditions]

        def changed(seconds: int) -> bool:
            at = facts.now + timedelta(seconds=seconds)
            values = {path: decay(path, at) for path in paths}
            groups = dict(facts.groups)
            groups.update({p[len("groups.") :]: v for p, v in values.items() if p != "engagement"})
            moved = replace(
                facts, now=at, groups=groups, engagement=values.get("engagement", facts.engagement)
            )
            return [condition(moved) for condition in conditions] != before

        low = 0
        if monotone and self._single_flip:  # each comparison flips at most once: bisect
            high = SAMPLES[-1]
            if not changed(high):
                return None
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (low, middle) if changed(middle) else (middle, high)
            return facts.now + timedelta(seconds=high)
        for high in SAMPLES:
            if changed(high):
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (low, middle) if changed(middle) else (middle, high)
                return facts.now + timedelta(seconds=high)
            low = high
        return None


SAMPLES = sorted(
    {60 * 2**k for k in range(20)}
    | {7 * 86_400 * k for k in range(1, 53)}
    | {int(HORIZON.total_seconds())}
)  # seconds after now: dense near now, weekly to the horizon


EPSILON = 1e-9


def crossing_points(nodes: Sequence[Compare]) -> dict[str, tuple[float, ...]] | None:
    """For each decaying score, the numbers the comparisons hold it against: its value can
    only change a comparison by crossing one of them. None when a decaying score is compared
    with anything but constants (another score, a trait): then it has to be sampled."""
    found: dict[str, list[float]] = {}
    for node in nodes:
        for left, right in pairwise(node.operands):
            for var, other in ((left, right), (right, left)):
                if not (isinstance(var, Var) and decaying_path(var.path)):
                    continue
                items = other.items if isinstance(other, ListOf) else (other,)
                if not all(isinstance(item, Literal) for item in items):
                    return None
                found.setdefault(var.path, []).extend(float(n) for n in numbers(items))
    return {path: tuple(points) for path, points in found.items()}


def decaying_path(path: str) -> bool:
    return path == "engagement" or path.startswith("groups.")


def decaying(operands: Sequence[Node]) -> bool:
    return any(isinstance(o, Var) and decaying_path(o.path) for o in operands)


def expiry(window: Window, facts: Facts) -> datetime | None:
    """When happened() stops holding as its events age; None when it does not hold now."""
    cutoff = facts.now - window.within
    stamps = sorted(t for t in facts.recent.get(window.event, ()) if t > cutoff)
    if len(stamps) < window.times:
        return None
    return stamps[len(stamps) - window.times] + window.within


def thresholds(root: Node) -> tuple[tuple[str, float], ...]:
    found: list[tuple[str, float]] = []
    for node in walk(root):
        if not isinstance(node, Compare):
            continue
        for left, right in pairwise(node.operands):
            for var, other in ((left, right), (right, left)):
                if not isinstance(var, Var):
                    continue
                items = other.items if isinstance(other, ListOf) else (other,)
                found += [(var.path, float(n)) for n in numbers(items)]
    return tuple(dict.fromkeys(found))


_RAISES = {">=": True, ">": True, "<=": False, "<": False}


def floors(root: Node) -> tuple[tuple[str, float], ...]:
    """Every (variable, number) the policy needs a variable to reach: ``engagement >= 50``,
    ``20 < groups.web``. Used to refuse thresholds the model can never produce."""
    found: list[tuple[str, float]] = []
    for node in walk(root):
        if not isinstance(node, Compare):
            continue
        for (left, right), op in zip(pairwise(node.operands), node.ops, strict=True):
            raises = _RAISES.get(op.text)
            if raises is None:
                continue
            var, other = (left, right) if raises else (right, left)
            if isinstance(var, Var) and isinstance(other, Literal):
                found += [(var.path, float(n)) for n in numbers((other,))]
    return tuple(dict.fromkeys(found))


def numbers(nodes: Sequence[Node]) -> list[int | float]:
    values = [n.value for n in nodes if isinstance(n, Literal)]
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def parse_policy(source: str, groups: Collection[str] = ()) -> Policy:
    """Read, check and compile a policy. ``groups``: the score groups that exist (when
    given, ``groups.<name>`` must name one of them). Raises :class:`PolicyError`."""
    root = parse(source)
    Checker(source, groups).check(root)
    return Policy(source, root)

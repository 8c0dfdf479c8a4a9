"""The MQL policy language, read: tokens, grammar and happened() arguments.

``parse(source)`` returns a tree of :class:`Node` objects; :mod:`leadflow.domain.policy`
checks its names and types and compiles it into closures. User text is never handed to
``eval``, ``exec``, ``compile`` or ``ast``: this module scans it itself and accepts only the
grammar below, so anything else (attributes, subscripts, calls other than ``happened``,
lambdas, comprehensions, f-strings, arithmetic, assignment) is refused with its place.

    policy     := or_expr
    or_expr    := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | comparison
    comparison := operand (('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in') operand)*
    operand    := literal | name | happened(...) | '(' or_expr ')' | list
    list       := '(' literal ',' [literal (',' literal)* [',']] ')'
                | '[' literal (',' literal)* [','] ']'
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import timedelta

from leadflow.domain.errors import ConfigError

MAX_LENGTH = 20_000
MAX_DEPTH = 40
GRADES = ("A", "B", "C", "D")
UNITS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
MAX_WITHIN = timedelta(days=3_660)


class PolicyError(ConfigError):
    """A policy that cannot be accepted. ``line`` and ``column`` are 1-based; ``problem`` is
    the bare reason; the message adds the place and the offending line underlined."""

    def __init__(self, problem: str, source: str, start: int, end: int | None = None) -> None:
        start = max(0, min(start, len(source)))
        end = start + 1 if end is None or end <= start else end
        line_start = source.rfind("\n", 0, start) + 1
        line_end = source.find("\n", start)
        line_end = len(source) if line_end == -1 else line_end
        self.source = source
        self.problem = problem
        self.start, self.end = start, end
        self.line = source.count("\n", 0, start) + 1
        self.column = start - line_start + 1
        where = f"line {self.line}, column {self.column}" if "\n" in source else ""
        where = where or f"column {self.column}"
        text = source[line_start:line_end]
        pad = "".join(c if c == "\t" else " " for c in text[: start - line_start])
        carets = "^" * max(1, min(end, line_end) - start)
        super().__init__(f"policy, {where}: {problem}\n  {text}\n  {pad}{carets}")

    def __reduce__(self) -> tuple[type[PolicyError], tuple[str, str, int, int]]:
        return (PolicyError, (self.problem, self.source, self.start, self.end))


@dataclass(frozen=True)
class Window:
    """One ``happened()`` reference: at least ``times`` events named ``event`` in ``within``."""

    event: str
    within: timedelta
    times: int


# --- the tree -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    start: int  # offsets into the source: source[start:end] is the text as written
    end: int


@dataclass(frozen=True)
class Literal(Node):
    value: int | float | str | bool | None


@dataclass(frozen=True)
class Var(Node):
    path: str  # "engagement", "fit.grade", "groups.webinar", "traits.plan", ...


@dataclass(frozen=True)
class ListOf(Node):
    items: tuple[Literal, ...]


@dataclass(frozen=True)
class Compare(Node):
    operands: tuple[Node, ...]  # one more than ops; a ListOf only right of 'in' / 'not in'
    ops: tuple[Token, ...]  # text "==", "<", "in", "not in", ... and place


@dataclass(frozen=True)
class Happened(Node):
    window: Window


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


# --- tokens -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name" | "number" | "string" | "op" | "end"
    text: str
    start: int
    end: int
    value: int | float | str | None = None


_SCAN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[^\W\d]\w*)"
    r"|(?P<string>['\"])"
    r"|(?P<op>==|!=|<=|>=|<>|:=|\*\*|//|&&|\|\||->|[-<>=(),.\[\]+*/%@&|^~!:;{}?#`$\\])"
)
_ARITHMETIC = ("+", "*", "**", "/", "//", "%", "@", "^", "~", "->")
_WORDS = {"and", "or", "not", "in", "True", "False", "None"}  # the keywords of the language
_REFUSED = {  # token -> why it is refused ({} is the token)
    **dict.fromkeys(("&", "&&"), "use 'and' instead of '{}'"),
    **dict.fromkeys(("|", "||"), "use 'or' instead of '{}'"),
    **dict.fromkeys(_ARITHMETIC, "arithmetic ('{}') is not supported"),
    **dict.fromkeys("{}", "sets and dictionaries are not supported"),
    **dict.fromkeys(("`", "$", "?", "\\"), "unexpected character '{}'"),
    **dict.fromkeys(set(keyword.kwlist) - _WORDS, "'{}' is not supported in a policy"),
    **dict.fromkeys(("for", "async"), "comprehensions are not supported"),
    **dict.fromkeys(("if", "else"), "conditional expressions ('{}') are not supported"),
    "!": "use 'not' instead of '!'",
    "<>": "use '!=' instead of '<>'",
    ":=": "assignment (':=') is not supported",
    ":": "':' is not supported (no lambdas, slices or dictionaries)",
    ";": "a policy is one expression: ';' is not supported",
    "#": "comments are not supported in a policy",
    "lambda": "lambdas are not supported",
    "is": "use '==' or '!=' instead of 'is'",
}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_PREFIXES = {"f", "r", "b", "u", "rb", "br", "fr", "rf"}
_WORD = re.compile(r"\w+")
_DURATION = re.compile(r"\s*(\d{1,7})\s*([a-zA-Z]+)\s*")


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        found = _SCAN.match(source, pos)
        if found is None:
            raise PolicyError(f"unexpected character {source[pos]!r}", source, pos)
        kind, text, end = found.lastgroup or "", found.group(), found.end()
        if kind == "string":
            value, end = _string(source, pos)
            tokens.append(Token("string", source[pos:end], pos, end, value))
        elif kind == "number":
            tokens.append(Token("number", text, pos, end, _number(source, pos, end)))
        elif kind in ("name", "op"):
            token = Token(kind, text, pos, end)
            _refuse(source, token, tokens)
            tokens.append(token)
        pos = end
    tokens.append(Token("end", "", len(source), len(source)))
    return tokens


def _string(source: str, start: int) -> tuple[str, int]:
    quote, pos, out = source[start], start + 1, list[str]()
    while pos < len(source) and source[pos] != "\n":
        char = source[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\\":
            escaped = source[pos + 1 : pos + 2]
            if escaped not in _ESCAPES:
                raise PolicyError(f"unsupported escape '\\{escaped}'", source, pos, pos + 2)
            out.append(_ESCAPES[escaped])
            pos += 2
            continue
        out.append(char)
        pos += 1
    raise PolicyError(f"unterminated text: add the closing {quote}", source, start, pos)


def _number(source: str, start: int, end: int) -> int | float:
    text = source[start:end]
    tail = _WORD.match(source, end)
    if tail:
        word = text + tail.group()
        duration = isinstance(parse_duration(word), timedelta)
        problem = (
            f"write durations in quotes: '{word}'" if duration else f"{word!r} is not a number"
        )
        raise PolicyError(problem, source, start, tail.end())
    if len(text) > 30:
        raise PolicyError("this number is too long", source, start, end)
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if value in (float("inf"), float("-inf")):
        raise PolicyError("this number is too large", source, start, end)
    return value


def _refuse(source: str, token: Token, before: list[Token]) -> None:
    """Refuse what is not part of the language, whatever its place."""
    text, start, end = token.text, token.start, token.end
    if token.kind == "name" and text.lower() in _PREFIXES and source[end : end + 1] in ("'", '"'):
        what = "f-strings are" if "f" in text.lower() else "string prefixes are"
        raise PolicyError(f"{what} not supported", source, start, end + 1)
    if token.kind == "name" and before and before[-1].text == ".":
        return  # a field name, such as groups.if, is just a name
    if text in ("*", "**") and before and before[-1].text in ("(", ","):
        raise PolicyError("star-arguments are not supported", source, start, end)
    if text in _REFUSED:
        raise PolicyError(_REFUSED[text].format(text), source, start, end)


def parse_duration(text: str) -> timedelta | str:
    """A duration such as '30m', '12h', '7d', '2w'; the problem as text when it is not one."""
    found = _DURATION.fullmatch(text)
    if not found or found.group(2) not in UNITS:
        return (
            f"{text!r} is not a duration: write a whole number and a unit, m (minutes), "
            "h (hours), d (days) or w (weeks), e.g. '30m', '12h', '7d', '2w'"
        )
    within = timedelta(seconds=int(found.group(1)) * UNITS[found.group(2)])
    if not within:
        return "a duration must be longer than zero"
    return within if within <= MAX_WITHIN else "a duration may be at most 10 years"


def suggest(word: str, candidates: Collection[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- grammar -------------------------------------------------------------------
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}


class Parser:
    """Recursive descent over the tokens, loosest binding first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0
        self.depth = 0  # brackets and 'not's around the current place

    def deeper(self, levels: int, start: int) -> None:
        self.depth += levels
        if self.depth > MAX_DEPTH:
            raise self.fail("the policy is nested too deeply", start)

    def fail(self, problem: str, start: int, end: int | None = None) -> PolicyError:
        return PolicyError(problem, self.source, start, end)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def at(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind in ("op", "name") and token.text == text

    def expect(self, text: str, why: str) -> Token:
        if not self.at(text):
            raise self.unexpected(self.peek(), f"expected '{text}' {why}")
        return self.take()

    def unexpected(self, token: Token, expected: str) -> PolicyError:
        if token.kind == "end":
            return self.fail(f"the policy ends too early: {expected}", token.start)
        if token.text == "=":
            return self.fail("use '==' to compare", token.start, token.end)
        if token.text == "-":
            return self.fail("arithmetic ('-') is not supported", token.start, token.end)
        lowered = token.text.lower()
        if token.kind == "name" and lowered in ("and", "or", "not", "in") and lowered != token.text:
            problem = f"unexpected '{token.text}' (did you mean '{lowered}'?)"
            return self.fail(problem, token.start, token.end)
        return self.fail(f"unexpected {token.text!r}: {expected}", token.start, token.end)

    def policy(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("the policy is empty", 0, len(self.source))
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.unexpected(self.peek(), "expected 'and', 'or' or the end of the policy")
        return node

    def or_expr(self) -> Node:
        return self.bool_op("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.bool_op("and", self.not_expr)

    def bool_op(self, word: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.at(word):
            self.take()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return BoolOp(operands[0].start, operands[-1].end, word, tuple(operands))

    def not_expr(self) -> Node:
        starts = []
        while self.at("not"):
            starts.append(self.take().start)
        self.deeper(len(starts), starts[-1] if starts else 0)
        node = self.comparison()
        self.deeper(-len(starts), node.end)
        for start in reversed(starts):
            node = Not(start, node.end, node)
        return node

    def comparison(self) -> Node:
        operands, ops = [self.operand()], []
        while op := self.comparison_op():
            operands.append(self.operand())
            ops.append(op)
        if not ops:
            return operands[0]
        return Compare(operands[0].start, operands[-1].end, tuple(operands), tuple(ops))

    def comparison_op(self) -> Token | None:
        token = self.peek()
        if (token.kind == "op" and token.text in _COMPARISONS) or self.at("in"):
            return self.take()
        if self.at("not") and self.at("in", 1):
            self.take()
            end = self.take().end
            return Token("op", "not in", token.start, end)
        return None

    def operand(self) -> Node:
        token = self.peek()
        node: Node
        if token.kind in ("number", "string"):
            node = Literal(token.start, self.take().end, token.value)
        elif token.text == "-" and token.kind == "op" and self.peek(1).kind == "number":
            self.take()
            number = self.take()
            assert isinstance(number.value, int | float)
            node = Literal(token.start, number.end, -number.value)
        elif token.kind == "name" and token.text in ("True", "False", "None"):
            self.take()
            node = Literal(token.start, token.end, {"True": True, "False": False}.get(token.text))
        elif token.kind == "name" and token.text not in ("and", "or", "not", "in"):
            node = self.name()
        elif self.at("(") or self.at("["):
            node = self.parens()
        else:
            raise self.unexpected(token, "expected a value, a name or a condition")
        self.no_trailer(node)
        return node

    def no_trailer(self, node: Node) -> None:
        token = self.peek()
        refusals = {
            ".": "attribute access is only for fit., groups., traits. and account. names",
            "[": "subscripts are not supported; write traits.<name> or account.<name>",
            "(": "only happened(...) can be called",
        }
        if token.kind == "op" and token.text in refusals:
            raise self.fail(refusals[token.text], token.start, token.end)

    def parens(self) -> Node:
        opening = self.take()
        closer = ")" if opening.text == "(" else "]"
        if self.at(closer):
            problem = "empty brackets: write a condition or a list of values"
            raise self.fail(problem, opening.start, self.peek().end)
        self.deeper(1, opening.start)
        first = self.or_expr()
        self.deeper(-1, opening.start)
        if closer == ")" and not self.at(","):
            close = self.expect(")", "to close the '('")
            return replace(first, start=opening.start, end=close.end)
        items = [self.item(first)]
        while self.at(","):
            self.take()
            if self.at(closer):
                break
            items.append(self.item(self.or_expr()))
        close = self.expect(closer, f"to close the list opened by '{opening.text}'")
        return ListOf(opening.start, close.end, tuple(items))

    def item(self, node: Node) -> Literal:
        if not isinstance(node, Literal):
            problem = "list items must be values: text in quotes, numbers, True, False or None"
            raise self.fail(problem, node.start, node.end)
        return node

    # names and happened()
    def name(self) -> Node:
        first = self.take()
        parts, end = [first.text], first.end
        while self.at(".") and self.peek(1).kind == "name":
            self.take()
            token = self.take()
            parts.append(token.text)
            end = token.end
        if self.at("("):
            return self.call(".".join(parts), first.start, end)
        if self.at("["):
            problem = "subscripts are not supported; write traits.<name> or account.<name>"
            raise self.fail(problem, self.peek().start, self.peek().end)
        return Var(first.start, end, ".".join(parts))

    def call(self, path: str, start: int, end: int) -> Happened:
        if path != "happened":
            hint = suggest(path, ["happened"])
            problem = f"unknown function '{path}'{hint}: the only function is happened(...)"
            raise self.fail(problem, start, end)
        self.take()
        positional: list[Node] = []
        keywords: dict[str, Node] = {}
        while not self.at(")"):
            if self.peek().kind == "name" and self.at("=", 1):
                key = self.take()
                self.take()
                self.keyword(key, keywords)
                keywords[key.text] = self.operand()
            elif keywords:
                raise self.fail("write the event name first, then within= and times=", start, end)
            else:
                positional.append(self.operand())
            if not self.at(","):
                break
            self.take()
        close = self.expect(")", "to close happened(")
        return self.window(positional, keywords, start, close.end)

    def keyword(self, key: Token, seen: dict[str, Node]) -> None:
        if key.text not in ("within", "times"):
            hint = suggest(key.text, ("within", "times"))
            problem = f"happened() has no argument '{key.text}'{hint}; it takes within= and times="
            raise self.fail(problem, key.start, key.end)
        if key.text in seen:
            raise self.fail(f"happened() got '{key.text}' twice", key.start, key.end)

    def window(
        self, positional: list[Node], keywords: dict[str, Node], start: int, end: int
    ) -> Happened:
        if len(positional) > 3:
            problem = "happened() takes at most 3 arguments: the event name, within and times"
            raise self.fail(problem, positional[3].start, positional[-1].end)
        args = dict(zip(("event", "within", "times"), positional, strict=False))
        for key, node in keywords.items():
            if key in args:
                raise self.fail(f"happened() got '{key}' twice", node.start, node.end)
            args[key] = node
        event = args.get("event")
        if event is None:
            problem = "happened() needs an event name, e.g. happened('Demo Requested')"
            raise self.fail(problem, start, end)
        if not (isinstance(event, Literal) and isinstance(event.value, str) and event.value):
            problem = "the event name must be text in quotes, e.g. happened('Demo Requested')"
            raise self.fail(problem, event.start, event.end)
        window = Window(event.value, self.within(args.get("within")), self.times(args.get("times")))
        return Happened(start, end, window)

    def within(self, node: Node | None) -> timedelta:
        if node is None:
            return timedelta(days=7)
        if not (isinstance(node, Literal) and isinstance(node.value, str)):
            problem = "within must be a duration in quotes, e.g. within='7d'"
            raise self.fail(problem, node.start, node.end)
        within = parse_duration(node.value)
        if isinstance(within, str):
            raise self.fail(within, node.start, node.end)
        return within

    def times(self, node: Node | None) -> int:
        if node is None:
            return 1
        value = node.value if isinstance(node, Literal) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail("times must be a whole number, e.g. times=2", node.start, node.end)
        if value < 1:
            raise self.fail("times must be at least 1", node.start, node.end)
        return value


def parse(source: str) -> Node:
    """The checked tree of a policy; :class:`PolicyError` when it cannot be accepted."""
    if len(source) > MAX_LENGTH:
        problem = f"the policy is too long ({len(source)} characters; at most {MAX_LENGTH})"
        raise PolicyError(problem, source, MAX_LENGTH)
    return Parser(source).policy()

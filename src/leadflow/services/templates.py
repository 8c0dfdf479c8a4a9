"""Message templates for email and SMS: sandboxed Jinja2 files in the ``templates/`` folder.

Layout (in the home folder)::

    templates/
      welcome.email.yaml   # subject: ..., text: |..., html: |...  (text or html or both)
      reminder.sms.txt     # the text of an SMS

Templates see ``lead`` (first_name, last_name, email, phone, company, id and every trait under
``lead.traits``), ``account`` (the traits of the lead's company), ``offer`` (a coupon: code,
expires_at), ``unsubscribe_url`` and ``sender`` (name, address). A value that is missing or
empty renders as nothing, so ``{{ lead.first_name | default('there') }}`` falls back, and
no template ever prints ``None``. Templates run in Jinja's sandbox: no attribute that
starts with an underscore, no access to Python internals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml
from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from leadflow.domain.errors import NotFound, ValidationError
from leadflow.ports import LeadView

CHANNELS = ("email", "sms")
SUFFIX = {"email": ".email.yaml", "sms": ".sms.txt"}
EMAIL_PARTS = ("subject", "text", "html")
VARIABLES = frozenset({"lead", "account", "offer", "unsubscribe_url", "confirm_url", "sender"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


class _Sandbox(SandboxedEnvironment):
    """The sandbox, made loud: reaching for an unsafe attribute is an error, not blank."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} is not allowed in templates")


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    return env


@dataclass(frozen=True, slots=True)
class _Part:
    """One template source: its text and the file line its first line sits on."""

    source: str
    first_line: int


class Templates:
    """The templates of one folder; compiled templates are cached by file and mtime."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._text_env = _environment(autoescape=False)
        self._html_env = _environment(autoescape=True)
        self._cache: dict[tuple[Path, float, str], Template] = {}

    # discovery ---------------------------------------------------------------------------
    def names(self, channel: str | None = None) -> list[str]:
        """The template names in the folder (of one channel when given), sorted."""
        found: set[str] = set()
        for kind in (channel,) if channel else CHANNELS:
            suffix = SUFFIX[_channel(kind)]
            if self.folder.is_dir():
                found.update(p.name[: -len(suffix)] for p in self.folder.glob(f"*{suffix}"))
        return sorted(found)

    def path(self, name: str, channel: str) -> Path:
        if not _NAME.match(name):
            raise ValidationError(
                f"template: {name!r} is not a template name (letters, digits, '-', '_')"
            )
        return self.folder / f"{name}{SUFFIX[_channel(channel)]}"

    # checking ----------------------------------------------------------------------------
    def check(self, name: str, channel: str) -> None:
        """ValidationError naming the file, the line and the problem, or None when the
        template can be rendered: it exists, parses, names only known variables and has
        the parts its channel needs."""
        path = self.path(name, channel)
        for part, piece in self._parts(path, _channel(channel)).items():
            env = self._html_env if part == "html" else self._text_env
            _check_source(env, path, piece)

    def _parts(self, path: Path, channel: str) -> dict[str, _Part]:
        if not path.is_file():
            raise NotFound(f"{path}: no such template file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{path}: cannot read the template: {exc}") from None
        if channel == "sms":
            if not text.strip():
                raise ValidationError(f"{path}:1: the SMS template is empty")
            return {"text": _Part(text.rstrip("\n"), 1)}
        return _email_parts(path, text)

    def _compiled(self, path: Path, part: str, piece: _Part) -> Template:
        stamp = path.stat().st_mtime
        key = (path, stamp, part)
        found = self._cache.get(key)
        if found is None:
            env = self._html_env if part == "html" else self._text_env
            found = _check_source(env, path, piece)
            self._cache[key] = found
        return found

    # rendering ---------------------------------------------------------------------------
    def render_email(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        """Subject, text and HTML; the text is made from the HTML when only HTML is given."""
        path = self.path(name, "email")
        parts = self._parts(path, "email")
        out = {
            part: _render(self._compiled(path, part, piece), path, piece, context)
            for part, piece in parts.items()
        }
        subject = " ".join(out["subject"].split())
        html = out.get("html")
        text = out.get("text") or html_to_text(html or "")
        return RenderedEmail(subject=subject, text=text, html=html)

    def render_sms(self, name: str, context: dict[str, Any]) -> str:
        path = self.path(name, "sms")
        piece = self._parts(path, "sms")["text"]
        return _render(self._compiled(path, "text", piece), path, piece, context).strip()

    # context -----------------------------------------------------------------------------
    @staticmethod
    def context_for(
        lead: LeadView, account: dict[str, Any] | None, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """The variables of a template for one lead; missing values are left out."""
        traits = _clean(lead.traits)
        account = _clean(account if account is not None else (lead.account or {}))
        company = traits.get("company")
        if isinstance(company, dict):
            company = company.get("name")
        named = {
            "id": lead.id,
            "first_name": traits.get("first_name") or traits.get("firstName"),
            "last_name": traits.get("last_name") or traits.get("lastName"),
            "email": lead.email or traits.get("email"),
            "phone": lead.phone or traits.get("phone"),
            "company": company or account.get("name"),
            "traits": traits,
        }
        context: dict[str, Any] = {
            "lead": _clean(named),
            "account": account,
        }
        context.update({k: _clean(v) if isinstance(v, dict) else v for k, v in extra.items()})
        return context


def _channel(value: str) -> str:
    if value not in CHANNELS:
        raise ValidationError(f"channel: unknown channel {value!r}; known: email, sms")
    return value


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Without None and empty strings (so defaults apply), nested dicts cleaned too."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[key] = _clean(value) if isinstance(value, dict) else value
    return out


def _email_parts(path: Path, text: str) -> dict[str, _Part]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"{path}:{line}: not valid YAML: {problem}") from None
    if not isinstance(root, yaml.MappingNode):
        raise ValidationError(f"{path}:1: an email template is a mapping: subject, text, html")
    parts: dict[str, _Part] = {}
    for key_node, value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in EMAIL_PARTS:
            raise ValidationError(
                f"{path}:{line}: unknown key {key!r}; known keys: {', '.join(EMAIL_PARTS)}"
            )
        if not isinstance(value_node, yaml.ScalarNode):
            raise ValidationError(f"{path}:{line}: {key!r} must be text")
        block = value_node.style in ("|", ">")
        parts[key] = _Part(str(value_node.value), value_node.start_mark.line + 1 + int(block))
    if "subject" not in parts or not parts["subject"].source.strip():
        raise ValidationError(f"{path}:1: the email template has no subject")
    if not any(parts.get(p, _Part("", 0)).source.strip() for p in ("text", "html")):
        raise ValidationError(f"{path}:1: the email template has neither text nor html")
    return parts


def _check_source(env: SandboxedEnvironment, path: Path, piece: _Part) -> Template:
    try:
        tree = env.parse(piece.source)
    except TemplateSyntaxError as exc:
        line = piece.first_line + (exc.lineno or 1) - 1
        raise ValidationError(f"{path}:{line}: template syntax error: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(tree) - VARIABLES)
    if unknown:
        line = piece.first_line + _line_of_name(tree, unknown[0]) - 1
        known = ", ".join(sorted(VARIABLES))
        raise ValidationError(
            f"{path}:{line}: unknown variable {unknown[0]!r}; known variables: {known}"
        )
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            line = piece.first_line + node.lineno - 1
            raise ValidationError(f"{path}:{line}: attribute {node.attr!r} is not allowed")
    return env.from_string(tree)


def _line_of_name(tree: nodes.Template, name: str) -> int:
    for node in tree.find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return 1


def _render(template: Template, path: Path, piece: _Part, context: dict[str, Any]) -> str:
    try:
        return template.render(context)
    except TemplateError as exc:
        raise ValidationError(f"{path}: cannot render the template: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValidationError(f"{path}: cannot render the template: {exc}") from None


# HTML -> text -----------------------------------------------------------------------------
_BLOCKS = frozenset(
    {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}
)
_SKIP = frozenset({"style", "script", "head", "title"})


class _TextMaker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.out.append("\n")
        if tag == "li":
            self.out.append("- ")
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS and tag != "li":
            self.out.append("\n")
        if tag == "a" and self.links:
            href = self.links.pop()
            if href.startswith(("http://", "https://")):
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body: paragraphs kept, links spelled out."""
    maker = _TextMaker()
    maker.feed(html)
    maker.close()
    lines = [" ".join(line.split()) for line in "".join(maker.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

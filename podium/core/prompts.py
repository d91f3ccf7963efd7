"""Prompt templates and the :class:`Prompt` record: parse, list variables, compile, choose
an A/B variant, diff two versions, read ``prompts:/`` URIs and prompt files.

Pure logic, no I/O: the SDK compiles fetched prompts with it, the server validates new
versions and runs the playground with it, the CLI reads and writes prompt files with it.

Template syntax (``template_format="mustache"``, the default)::

    {{name}}  {{ name }}     a variable: letters, digits and _, not starting with a digit
    \\{{                      a literal "{{" (the backslash is dropped); "}}" alone is plain text
    {{{name}}}               "{" + the value + "}" (a brace run before a variable stays text)

``template_format="jinja2"`` renders with Jinja2's immutable sandbox (``{% if %}``,
``{% for %}``, filters) and ``StrictUndefined``; it needs the ``jinja2`` package.

A chat prompt is a list of messages ``{"role": ..., "content": ...}`` (content a template
string, or OpenAI content parts whose ``text`` is a template) and message-list
placeholders ``{"type": "placeholder", "name": "history"}`` that ``compile(history=[...])``
replaces with the given messages.

Errors are :class:`podium.errors.ValidationFailed` subclasses (HTTP 400 on the server, and
``ValueError`` too): :class:`TemplateSyntaxError` points at the line and column,
:class:`MissingVariablesError` names every missing variable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from podium.errors import ValidationFailed

__all__ = [
    "LATEST",
    "MAX_LABEL_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_VERSION_BYTES",
    "OPENAI_PARAMS",
    "RESERVED_SEGMENTS",
    "MissingVariablesError",
    "Prompt",
    "PromptMessages",
    "Target",
    "TemplateSyntaxError",
    "check_label",
    "check_prompt_name",
    "check_targets",
    "choose_version",
    "diff_versions",
    "parse_prompt_uri",
    "parse_template",
    "prompt_from_file",
    "prompt_to_file",
    "render_for_diff",
    "template_variables",
    "version_size",
]

#: The largest prompt version (template + config as compact UTF-8 JSON). Larger gets 413.
MAX_VERSION_BYTES = 1_000_000
MAX_NAME_LENGTH = 256
MAX_LABEL_LENGTH = 64
#: The label that always names the newest version; it moves by itself and cannot be set.
LATEST = "latest"
#: Path words of the REST API; a prompt name may not have them as a ``/``-separated part.
RESERVED_SEGMENTS = frozenset(
    {"versions", "labels", "history", "diff", "analytics", "resolve", "settings", "export"}
)
#: Config keys passed on to OpenAI's chat API by :meth:`Prompt.openai_kwargs`.
OPENAI_PARAMS = (
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_FORMATS = ("mustache", "jinja2")


# --- errors ---------------------------------------------------------------------------------


class TemplateSyntaxError(ValidationFailed, ValueError):
    """A template that cannot be parsed. ``line``/``column`` are 1-based, ``position`` is the
    0-based character offset in the string at ``field`` (e.g. ``prompt[1].content``)."""

    def __init__(self, message: str, *, field: str, text: str = "", position: int | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        if position is not None and line is None:
            line, column = _line_col(text, position)
        where = f" at line {line}, column {column}" if line is not None and column is not None else (
            f" at line {line}" if line is not None else "")
        super().__init__(
            f"invalid template in {field}{where}: {message}",
            details=[{"field": field, "line": line, "column": column, "position": position, "message": message}],
        )
        self.field = field
        self.line = line
        self.column = column
        self.position = position


class MissingVariablesError(ValidationFailed, ValueError):
    """``compile()`` was not given every variable (or placeholder) the template uses."""

    def __init__(self, missing: Sequence[str], *, prompt: str = "the prompt", uses: Sequence[str] = ()) -> None:
        self.missing = list(missing)
        names = ", ".join(self.missing)
        also = f" (it uses: {', '.join(uses)})" if uses else ""
        super().__init__(
            f"{prompt} is missing variable{'s' if len(self.missing) > 1 else ''}: {names}{also}; "
            f"pass {'them' if len(self.missing) > 1 else 'it'} to compile(), e.g. compile({self.missing[0]}=...)",
            details=[{"field": f"variables.{m}", "message": "missing"} for m in self.missing],
        )


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


# --- mustache-style templates -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Var:
    name: str


_Segments = tuple[str | _Var, ...]


def parse_template(text: str, *, field: str = "prompt") -> _Segments:
    """Split a mustache-style template into text and variables; raises TemplateSyntaxError."""
    out: list[str | _Var] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("{{", i)
        if j < 0:
            buf.append(text[i:])
            break
        if j > i and text[j - 1] == "\\":
            buf.append(text[i : j - 1])
            buf.append("{{")
            i = j + 2
            continue
        k = j
        while k + 2 < n and text[k + 2] == "{":  # "{{{x}}}": the extra braces are text
            k += 1
        buf.append(text[i:k])
        end = text.find("}}", k + 2)
        inner = text[k + 2 : end] if end >= 0 else ""
        if end < 0 or "{{" in inner:
            raise TemplateSyntaxError(
                "'{{' is never closed; close it with '}}', or write '\\{{' for a literal '{{'",
                field=field, text=text, position=k,
            )
        name = inner.strip()
        if not name:
            raise TemplateSyntaxError("empty variable '{{}}'; put a name inside, e.g. {{question}}",
                                      field=field, text=text, position=k)
        if not _IDENT.fullmatch(name):
            raise TemplateSyntaxError(
                f"invalid variable name {name!r}: use letters, digits and _ (not starting with a digit), "
                "or write '\\{{' for a literal '{{'",
                field=field, text=text, position=k + 2 + (len(inner) - len(inner.lstrip())),
            )
        if buf:
            out.append("".join(buf))
            buf = []
        out.append(_Var(name))
        i = end + 2
    if buf:
        joined = "".join(buf)
        if joined:
            out.append(joined)
    return tuple(out)


def _render_segments(segments: _Segments, values: Mapping[str, Any]) -> str:
    return "".join(s if isinstance(s, str) else _to_text(values[s.name]) for s in segments)


def _to_text(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v is None:
        return ""
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


# --- Jinja2 (sandboxed) -------------------------------------------------------------------------


@functools.cache
def _jinja_env() -> Any:
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as e:  # pragma: no cover - jinja2 ships with podium[server]
        raise ValidationFailed(
            "template_format 'jinja2' needs the jinja2 package: pip install jinja2 (or use 'mustache')"
        ) from e
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # Nunjucks' (promptfoo's) name for Jinja2's tojson, so suites written for promptfoo render
    env.filters["dump"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent, default=str)
    return env


@dataclass(frozen=True, slots=True)
class _Jinja:
    template: Any
    variables: tuple[str, ...]


def _parse_jinja(text: str, field: str) -> _Jinja:
    import jinja2
    from jinja2 import meta

    env = _jinja_env()
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateSyntaxError(f"{e.message} (Jinja2)", field=field, line=e.lineno, column=None) from None
    # Appearance order: the undeclared names, sorted by where they first occur.
    names = meta.find_undeclared_variables(ast)
    order = sorted(names, key=lambda v: (m.start() if (m := re.search(rf"\b{re.escape(v)}\b", text)) else 0, v))
    return _Jinja(env.from_string(ast), tuple(order))


def _render_jinja(j: _Jinja, values: Mapping[str, Any], field: str, prompt: str) -> str:
    import jinja2
    from jinja2.sandbox import SecurityError

    try:
        text: str = j.template.render(**values)
        return text
    except jinja2.UndefinedError as e:
        m = re.search(r"'([^']+)' is undefined", str(e))
        raise MissingVariablesError([m.group(1) if m else str(e)], prompt=prompt, uses=j.variables) from None
    except SecurityError as e:
        raise ValidationFailed(f"{prompt}: the Jinja2 sandbox refused {field}: {e}") from None
    except jinja2.TemplateError as e:
        raise ValidationFailed(f"{prompt}: rendering {field} failed: {e}") from None


# --- compiled templates (text or chat) ------------------------------------------------------------


class _Compiled:
    """A parsed prompt: one template per templated string, in order, plus the placeholders."""

    __slots__ = ("parts", "placeholders", "variables")

    def __init__(self, parts: dict[str, Any], variables: tuple[str, ...], placeholders: tuple[str, ...]) -> None:
        self.parts = parts  # field path -> _Segments | _Jinja
        self.variables = variables
        self.placeholders = placeholders


def _compile_structure(type_: str, template: Any, template_format: str) -> _Compiled:
    if template_format not in _FORMATS:
        raise ValidationFailed(f"template_format must be one of {', '.join(_FORMATS)}; got {template_format!r}",
                               details=[{"field": "template_format", "message": "unknown format"}])
    parts: dict[str, Any] = {}
    seen: dict[str, None] = {}
    placeholders: dict[str, None] = {}

    def add(field: str, text: str) -> None:
        if template_format == "jinja2":
            j = _parse_jinja(text, field)
            parts[field] = j
            names: Iterable[str] = j.variables
        else:
            segs = parse_template(text, field=field)
            parts[field] = segs
            names = [s.name for s in segs if isinstance(s, _Var)]
        for v in names:
            seen.setdefault(v, None)

    if type_ == "text":
        if not isinstance(template, str):
            raise ValidationFailed("a text prompt is a string; send type 'chat' for a list of messages",
                                   details=[{"field": "prompt", "message": "not a string"}])
        add("prompt", template)
    elif type_ == "chat":
        if not isinstance(template, list) or not template:
            raise ValidationFailed(
                "a chat prompt is a non-empty list of messages like {\"role\": \"user\", \"content\": \"...\"}",
                details=[{"field": "prompt", "message": "not a list of messages"}],
            )
        for i, m in enumerate(template):
            where = f"prompt[{i}]"
            if not isinstance(m, dict):
                raise ValidationFailed(f"{where} must be an object with role and content",
                                       details=[{"field": where, "message": "not an object"}])
            if m.get("type") == "placeholder":
                name = m.get("name")
                if not isinstance(name, str) or not _IDENT.fullmatch(name):
                    raise ValidationFailed(
                        f"{where} is a placeholder whose name must be letters, digits and _ (e.g. \"history\")",
                        details=[{"field": f"{where}.name", "message": "invalid placeholder name"}],
                    )
                if set(m) - {"type", "name"}:
                    raise ValidationFailed(f"{where}: a placeholder has only type and name",
                                           details=[{"field": where, "message": "unknown fields"}])
                placeholders.setdefault(name, None)
                continue
            role = m.get("role")
            if not isinstance(role, str) or not role:
                raise ValidationFailed(f"{where} needs a role (system, user, assistant, tool...)",
                                       details=[{"field": f"{where}.role", "message": "missing role"}])
            content = m.get("content")
            if isinstance(content, str):
                add(f"{where}.content", content)
            elif isinstance(content, list):
                for k, p in enumerate(content):
                    if isinstance(p, dict) and isinstance(p.get("text"), str):
                        add(f"{where}.content[{k}].text", p["text"])
                    elif not isinstance(p, dict):
                        raise ValidationFailed(f"{where}.content[{k}] must be a content part object",
                                               details=[{"field": f"{where}.content[{k}]", "message": "not an object"}])
            elif content is not None:
                raise ValidationFailed(f"{where}.content must be a string, a list of content parts or null",
                                       details=[{"field": f"{where}.content", "message": "wrong type"}])
    else:
        raise ValidationFailed(f"type must be 'text' or 'chat'; got {type_!r}",
                               details=[{"field": "type", "message": "unknown type"}])
    clash = set(seen) & set(placeholders)
    if clash:
        raise ValidationFailed(f"{', '.join(sorted(clash))} is used both as a variable and as a placeholder; "
                               "rename one", details=[{"field": "prompt", "message": "name clash"}])
    return _Compiled(parts, tuple(seen), tuple(placeholders))


def template_variables(type_: str, template: Any, template_format: str = "mustache") -> tuple[list[str], list[str]]:
    """``(variables, placeholders)`` of a template, in order of appearance; validates it."""
    c = _compile_structure(type_, template, template_format)
    return list(c.variables), list(c.placeholders)


def version_size(template: Any, config: Any) -> int:
    """Bytes a version takes: its template and config as compact UTF-8 JSON."""
    return len(json.dumps({"prompt": template, "config": config}, ensure_ascii=False, separators=(",", ":"),
                          default=str).encode())


class PromptMessages(list[dict[str, Any]]):
    """The messages ``compile()`` returns for a chat prompt: a plain ``list`` of dicts that also
    remembers its :class:`Prompt`, so ``podium.openai`` links the generation to it."""

    __slots__ = ("podium_prompt",)

    def __init__(self, messages: Iterable[dict[str, Any]] = (), prompt: Prompt | None = None) -> None:
        super().__init__(messages)
        self.podium_prompt = prompt


# --- the Prompt record ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Prompt:
    """One version of a managed prompt, ready to compile.

    ``podium.get_prompt("qa")`` returns one; build one yourself for tests or fallbacks:
    ``Prompt(name="qa", type="text", prompt="Answer: {{question}}")``.
    """

    name: str
    prompt: str | list[dict[str, Any]]
    type: Literal["text", "chat"] = "text"
    version: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    template_format: str = "mustache"
    commit_message: str | None = None
    created_at: str | None = None
    created_by: str | None = None
    #: The label it was fetched by (None when fetched by version).
    label: str | None = None
    #: True when this is the ``fallback=`` given to get_prompt (the server could not answer).
    is_fallback: bool = False
    fallback_reason: str | None = None
    _compiled: _Compiled = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _compile_structure(self.type, self.prompt, self.template_format))
        if not isinstance(self.config, dict):
            raise ValidationFailed("config must be an object (model, temperature, max_tokens, ...)",
                                   details=[{"field": "config", "message": "not an object"}])

    # --- reading --------------------------------------------------------------------------
    @property
    def variables(self) -> list[str]:
        """Template variables, in order of first appearance."""
        return list(self._compiled.variables)

    @property
    def placeholders(self) -> list[str]:
        """Message-list placeholders of a chat prompt, in order."""
        return list(self._compiled.placeholders)

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}" if self.version is not None else f"prompts:/{self.name}"

    @property
    def link(self) -> dict[str, Any]:
        """``{"prompt_name", "prompt_version"}``: link a span to this version,
        e.g. ``podium.update_current_span(**prompt.link)``."""
        return {"prompt_name": self.name, "prompt_version": self.version}

    def __repr__(self) -> str:
        v = "fallback" if self.is_fallback else f"v{self.version}"
        return f"<Prompt {self.name!r} {v} {self.type} variables={self.variables}>"

    def _what(self) -> str:
        return f"prompt {self.name!r}" + (f" v{self.version}" if self.version is not None else "")

    # --- compiling ------------------------------------------------------------------------
    def compile(self, **variables: Any) -> Any:
        """The prompt with its variables filled in: a string for a text prompt, a list of
        messages (:class:`PromptMessages`) for a chat prompt, placeholders expanded.

        Values that are not strings are rendered as JSON (dict, list) or ``str()``; None is "".
        Raises :class:`MissingVariablesError` naming every missing variable; extra ones are ignored.
        """
        c = self._compiled
        uses = (*c.variables, *c.placeholders)
        missing = [v for v in uses if v not in variables]
        # Jinja2 templates may guard a variable (``{% if x is defined %}``): only what rendering
        # actually needs is required there, but the error still names every missing one.
        if missing and (self.template_format != "jinja2" or any(p in missing for p in c.placeholders)):
            raise MissingVariablesError(missing, prompt=self._what(), uses=uses)
        try:
            return self._compile(variables)
        except MissingVariablesError:
            if missing:
                raise MissingVariablesError(missing, prompt=self._what(), uses=uses) from None
            raise

    def _compile(self, variables: Mapping[str, Any]) -> Any:
        if self.type == "text":
            return self._render("prompt", variables)
        out = PromptMessages(prompt=self)
        for i, m in enumerate(self.prompt):
            assert isinstance(m, dict)
            if m.get("type") == "placeholder":
                out.extend(_placeholder_messages(m["name"], variables[m["name"]], self._what()))
                continue
            msg = dict(m)
            content = m.get("content")
            if isinstance(content, str):
                msg["content"] = self._render(f"prompt[{i}].content", variables)
            elif isinstance(content, list):
                msg["content"] = [
                    {**p, "text": self._render(f"prompt[{i}].content[{k}].text", variables)}
                    if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                    for k, p in enumerate(content)
                ]
            out.append(msg)
        return out

    def _render(self, path: str, variables: Mapping[str, Any]) -> str:
        part = self._compiled.parts[path]
        if isinstance(part, _Jinja):
            return _render_jinja(part, variables, path, self._what())
        return _render_segments(part, variables)

    def openai_kwargs(self, **variables: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create(**...)``: ``messages`` (a
        text prompt becomes one user message) plus the OpenAI parameters found in ``config``
        (model, temperature, max_tokens, response_format, tools, ...). With ``podium.openai``
        the generation is linked to this prompt version automatically."""
        compiled = self.compile(**variables)
        messages = compiled if self.type == "chat" else PromptMessages(
            [{"role": "user", "content": compiled}], prompt=self)
        kwargs: dict[str, Any] = {k: self.config[k] for k in OPENAI_PARAMS if self.config.get(k) is not None}
        kwargs["messages"] = messages
        return kwargs

    # --- wire form ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, label: str | None = None) -> Prompt:
        """From the REST API's version object."""
        return cls(
            name=d["name"],
            prompt=d["prompt"],
            type=d.get("type") or ("chat" if isinstance(d["prompt"], list) else "text"),
            version=d.get("version"),
            config=dict(d.get("config") or {}),
            labels=tuple(d.get("labels") or ()),
            tags=tuple(d.get("tags") or ()),
            template_format=d.get("template_format") or "mustache",
            commit_message=d.get("commit_message"),
            created_at=str(d["created_at"]) if d.get("created_at") is not None else None,
            created_by=d.get("created_by"),
            label=label,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "prompt": self.prompt,
            "config": self.config,
            "labels": list(self.labels),
            "tags": list(self.tags),
            "template_format": self.template_format,
            "commit_message": self.commit_message,
            "variables": self.variables,
            "placeholders": self.placeholders,
        }


def _placeholder_messages(name: str, value: Any, what: str) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValidationFailed(f"{what}: placeholder {name!r} takes a list of messages, got {type(value).__name__}",
                               details=[{"field": f"variables.{name}", "message": "not a list of messages"}])
    out = []
    for i, m in enumerate(value):
        if hasattr(m, "model_dump") and not isinstance(m, Mapping):
            m = m.model_dump(exclude_none=True)
        if not isinstance(m, Mapping) or "role" not in m:
            raise ValidationFailed(f"{what}: placeholder {name!r} item {i} is not a message with a role",
                                   details=[{"field": f"variables.{name}[{i}]", "message": "not a message"}])
        out.append(dict(m))
    return out


# --- names, labels, A/B targets ---------------------------------------------------------------


def check_prompt_name(name: Any) -> str:
    """A valid prompt name (``/`` separates folders), or ValidationFailed saying what is wrong."""
    if not isinstance(name, str) or not name:
        raise ValidationFailed("a prompt needs a name, e.g. \"qa\" or \"support/triage\"",
                               details=[{"field": "name", "message": "missing"}])
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"prompt names are at most {MAX_NAME_LENGTH} characters; got {len(name)}",
                               details=[{"field": "name", "message": "too long"}])
    parts = name.split("/")
    for p in parts:
        if not _NAME_PART.fullmatch(p):
            raise ValidationFailed(
                f"invalid prompt name {name!r}: each '/'-separated part is letters, digits, '_', '-', '.', "
                "starting with a letter or digit (e.g. support/triage-v2)",
                details=[{"field": "name", "message": "invalid characters"}])
        if p in RESERVED_SEGMENTS:
            raise ValidationFailed(
                f"invalid prompt name {name!r}: {p!r} is reserved by the API paths "
                f"({', '.join(sorted(RESERVED_SEGMENTS))}); pick another word",
                details=[{"field": "name", "message": "reserved word"}])
    if parts[-1].isdigit():
        raise ValidationFailed(
            f"invalid prompt name {name!r}: the last part cannot be only digits (prompts:/NAME/3 means version 3)",
            details=[{"field": "name", "message": "ends with a number"}])
    return name


def check_label(label: Any, *, allow_latest: bool = False) -> str:
    if not isinstance(label, str) or not _LABEL.fullmatch(label) or len(label) > MAX_LABEL_LENGTH:
        raise ValidationFailed(
            f"invalid label {label!r}: 1-{MAX_LABEL_LENGTH} letters, digits, '_', '-', '.' (e.g. production)",
            details=[{"field": "label", "message": "invalid label"}])
    if label == LATEST and not allow_latest:
        raise ValidationFailed("'latest' always names the newest version and moves by itself; "
                               "use another label (production, staging, ...)",
                               details=[{"field": "label", "message": "reserved label"}])
    return label


@dataclass(frozen=True, slots=True)
class Target:
    """One version a label points to, with its share of traffic (weights are relative)."""

    version: int
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "weight": self.weight}


def check_targets(value: Any) -> list[Target]:
    """Targets from ``[{"version": 3, "weight": 90}, {"version": 4, "weight": 10}]`` (or ``[3]``);
    at most 10 distinct versions with positive finite weights."""
    if not isinstance(value, list | tuple) or not value:
        raise ValidationFailed("give a version, or versions with weights like "
                               "[{\"version\": 3, \"weight\": 90}, {\"version\": 4, \"weight\": 10}]",
                               details=[{"field": "versions", "message": "missing"}])
    if len(value) > 10:
        raise ValidationFailed("a label splits traffic between at most 10 versions",
                               details=[{"field": "versions", "message": "too many"}])
    out: list[Target] = []
    for i, v in enumerate(value):
        if isinstance(v, Target):
            t = v
        elif isinstance(v, int) and not isinstance(v, bool):
            t = Target(v, 1.0)
        elif isinstance(v, Mapping) and isinstance(v.get("version"), int) and not isinstance(v.get("version"), bool):
            w = v.get("weight", 1.0)
            if isinstance(w, bool) or not isinstance(w, int | float):
                raise ValidationFailed(f"versions[{i}].weight must be a number",
                                       details=[{"field": f"versions[{i}].weight", "message": "not a number"}])
            t = Target(int(v["version"]), float(w))
        else:
            raise ValidationFailed(f"versions[{i}] must be {{\"version\": N, \"weight\": W}}",
                                   details=[{"field": f"versions[{i}]", "message": "invalid target"}])
        if t.version < 1:
            raise ValidationFailed(f"versions[{i}]: versions start at 1",
                                   details=[{"field": f"versions[{i}].version", "message": "must be >= 1"}])
        if not (t.weight > 0 and t.weight < 1e9):
            raise ValidationFailed(f"versions[{i}]: weight must be > 0 (weights are relative: 90 and 10 is 90/10)",
                                   details=[{"field": f"versions[{i}].weight", "message": "must be > 0"}])
        out.append(t)
    if len({t.version for t in out}) != len(out):
        raise ValidationFailed("a version appears twice in the split", details=[{"field": "versions",
                                                                                "message": "duplicate version"}])
    return out


def choose_version(targets: Sequence[Target], *, name: str, label: str, seed: str | None = None) -> int:
    """The version a request gets from a label. Deterministic for a ``seed`` (a user or session
    id: the same seed always gets the same version of this prompt and label), random without."""
    if len(targets) == 1:
        return targets[0].version
    total = sum(t.weight for t in targets)
    if seed is None:
        x = random.random()
    else:
        digest = hashlib.sha256(f"{name}\x00{label}\x00{seed}".encode()).digest()
        x = int.from_bytes(digest[:8], "big") / 2**64
    x *= total
    acc = 0.0
    for t in targets:
        acc += t.weight
        if x < acc:
            return t.version
    return targets[-1].version


# --- URIs --------------------------------------------------------------------------------------


def parse_prompt_uri(uri: str) -> tuple[str, int | None, str | None]:
    """``prompts:/qa@production`` -> ("qa", None, "production"); ``prompts:/team/qa/3`` ->
    ("team/qa", 3, None); ``prompts:/qa`` -> ("qa", None, None)."""
    if not uri.startswith("prompts:/"):
        raise ValidationFailed(f"not a prompt URI: {uri!r}; use prompts:/NAME@LABEL or prompts:/NAME/VERSION")
    rest = uri[len("prompts:/"):].lstrip("/")
    if "@" in rest:
        name, _, label = rest.rpartition("@")
        return check_prompt_name(name), None, check_label(label, allow_latest=True)
    head, _, tail = rest.rpartition("/")
    if head and tail.isdigit():
        return check_prompt_name(head), int(tail), None
    return check_prompt_name(rest), None, None


# --- diff --------------------------------------------------------------------------------------


def render_for_diff(type_: str, template: Any) -> str:
    """A prompt as plain text lines for a diff: a text prompt as is; a chat prompt as
    ``[role]`` headers followed by the content, placeholders as ``[placeholder: name]``."""
    if type_ == "text" or isinstance(template, str):
        return str(template)
    blocks = []
    for m in template:
        if m.get("type") == "placeholder":
            blocks.append(f"[placeholder: {m.get('name')}]")
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", json.dumps(p, sort_keys=True)) if isinstance(p, dict) else str(p)
                                for p in content)
        extra = {k: v for k, v in m.items() if k not in ("role", "content")}
        head = f"[{m.get('role')}]" + (f" {json.dumps(extra, sort_keys=True)}" if extra else "")
        blocks.append(f"{head}\n{content if content is not None else ''}")
    return "\n\n".join(blocks)


def _udiff(a: str, b: str, a_name: str, b_name: str) -> str:
    import difflib

    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), a_name, b_name)
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def diff_versions(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Unified diffs of two version objects (``name``, ``version``, ``type``, ``prompt``,
    ``config``, ``template_format``): ``{"prompt", "config", "changed": [...], "identical"}``."""
    an = f"{a.get('name')}@{a.get('version')}"
    bn = f"{b.get('name')}@{b.get('version')}"
    pa, pb = render_for_diff(a["type"], a["prompt"]), render_for_diff(b["type"], b["prompt"])
    ca = json.dumps(a.get("config") or {}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    cb = json.dumps(b.get("config") or {}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    changed = [k for k in ("type", "template_format", "prompt", "config") if a.get(k) != b.get(k)]
    if a.get("type") == b.get("type") and a.get("prompt") != b.get("prompt") and pa == pb:
        pa, pb = (json.dumps(x["prompt"], indent=2, sort_keys=True, ensure_ascii=False) + "\n" for x in (a, b))
    return {
        "from": {"name": a.get("name"), "version": a.get("version")},
        "to": {"name": b.get("name"), "version": b.get("version")},
        "changed": changed,
        "identical": not changed,
        "prompt": _udiff(pa, pb, f"{an}/prompt", f"{bn}/prompt"),
        "config": _udiff(ca, cb, f"{an}/config", f"{bn}/config"),
    }


# --- prompt files (podium prompts pull / push) ---------------------------------------------------------

_FILE_KEYS = ("name", "version", "type", "template_format", "prompt", "config", "tags", "labels", "commit_message")


def prompt_to_file(version: Mapping[str, Any], *, labels: Mapping[str, Any] | None = None,
                   tags: Sequence[str] | None = None) -> dict[str, Any]:
    """The content of a prompt file: the version's content and the version it came from
    (``version``: ``push`` refuses when the server has moved past it). ``labels`` is
    informational (which labels pointed where when pulled)."""
    out: dict[str, Any] = {
        "name": version["name"],
        "version": version["version"],
        "type": version["type"],
        "template_format": version.get("template_format") or "mustache",
        "prompt": version["prompt"],
        "config": version.get("config") or {},
        "tags": list(tags if tags is not None else version.get("tags") or []),
    }
    if labels:
        out["labels"] = dict(labels)
    if version.get("commit_message"):
        out["commit_message"] = version["commit_message"]
    return out


def prompt_from_file(data: Any, *, source: str) -> dict[str, Any]:
    """Check a prompt file's content (from YAML or JSON); raises ValidationFailed naming ``source``."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"{source}: a prompt file is a mapping with name, type and prompt")
    unknown = set(data) - set(_FILE_KEYS)
    if unknown:
        raise ValidationFailed(f"{source}: unknown field(s) {sorted(unknown)}; allowed: {', '.join(_FILE_KEYS)}")
    try:
        name = check_prompt_name(data.get("name"))
    except ValidationFailed as e:
        raise ValidationFailed(f"{source}: {e.message}") from None
    template = data.get("prompt")
    type_ = data.get("type") or ("chat" if isinstance(template, list) else "text")
    fmt = data.get("template_format") or "mustache"
    try:
        _compile_structure(type_, template, fmt)
    except ValidationFailed as e:
        raise ValidationFailed(f"{source}: {e.message}", details=e.details) from None
    version = data.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise ValidationFailed(f"{source}: version must be the positive version number the file was pulled from")
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValidationFailed(f"{source}: config must be a mapping")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationFailed(f"{source}: tags must be a list of strings")
    return {
        "name": name,
        "version": version,
        "type": type_,
        "template_format": fmt,
        "prompt": template,
        "config": dict(config),
        "tags": tags,
        "labels": dict(data.get("labels") or {}),
        "commit_message": data.get("commit_message"),
    }

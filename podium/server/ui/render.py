"""Templates and the helpers they use: number/time formats, a bounded JSON tree, chat messages.

Everything user-supplied goes through Jinja's autoescape or ``markupsafe.escape``; the JSON
tree and chat views cap what they emit (nodes, items, characters) so a span with megabytes
of input renders a few kilobytes of HTML and links to the raw value instead.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

__all__ = [
    "chat_messages",
    "environment",
    "highlight_template",
    "json_size",
    "json_tree",
    "pretty_json",
    "side_by_side",
    "template_messages",
    "turn_text",
]

TEMPLATES = Path(__file__).parent / "templates"

# Limits of what one page renders.
JSON_MAX_NODES = 1500
JSON_MAX_ITEMS = 100
JSON_MAX_STR = 2000
JSON_OPEN_DEPTH = 2
CHAT_MAX_MESSAGES = 100
CHAT_MAX_CHARS = 20_000
TURN_MAX_CHARS = 4000


# --- formats ------------------------------------------------------------------------------------


def fmt_duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.2f} s"
    m, s = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def fmt_money(v: Any) -> str:
    if v is None:
        return "—"
    x = float(v)
    if x == 0:
        return "$0"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    if abs(x) >= 0.01:
        return f"${x:.4f}".rstrip("0")
    # Small amounts: 3 significant digits.
    digits = 2 - math.floor(math.log10(abs(x)))
    return f"${x:.{min(digits, 10)}f}"


def fmt_int(v: Any) -> str:
    if v is None:
        return "—"
    return f"{int(v):,}"


def fmt_pct(v: Any) -> str:
    if v is None:
        return "—"
    x = float(v) * 100
    return f"{x:.1f}%" if x else "0%"


def fmt_time(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fmt_ago(dt: datetime | None) -> str:
    if dt is None:
        return ""
    s = (datetime.now(UTC) - dt).total_seconds()
    if s < 0:
        return "in the future"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{int(s // n)} {unit} ago"
    return f"{int(s)} s ago"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def path_segment(v: Any) -> str:
    """Quote a value for use as one URL path segment (slashes included)."""
    return quote(str(v), safe="")


def path_segments(v: Any) -> str:
    """Quote a value for a URL path, keeping ``/`` (prompt names have folders)."""
    return quote(str(v), safe="/")


def query(params: list[tuple[str, str]] | dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` with ``changes`` applied (None removes a key)."""
    items = list(params.items()) if isinstance(params, dict) else list(params)
    for k, v in changes.items():
        items = [(a, b) for a, b in items if a != k]
        if v is not None:
            items.append((k, v))
    items = [(a, b) for a, b in items if b not in (None, "")]
    return "?" + urlencode(items) if items else "?"


# --- JSON tree -------------------------------------------------------------------------------------


def json_size(value: Any) -> int:
    try:
        return len(json.dumps(value, default=str, ensure_ascii=False))
    except (TypeError, ValueError):
        return 0


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.cut = False


def _scalar(v: Any, max_str: int) -> Markup:
    if v is None:
        return Markup('<span class="j-lit">null</span>')
    if isinstance(v, bool):
        return Markup('<span class="j-lit">%s</span>') % ("true" if v else "false")
    if isinstance(v, int | float):
        return Markup('<span class="j-num">%s</span>') % json.dumps(v)
    s = str(v)
    if len(s) > max_str:
        more = len(s) - max_str
        return Markup('<span class="j-str">"%s</span><span class="j-more">… %s more characters</span>'
                      '<span class="j-str">"</span>') % (s[:max_str], f"{more:,}")
    return Markup('<span class="j-str">"%s"</span>') % s


def _node(v: Any, depth: int, b: _Budget, max_items: int, max_str: int, open_depth: int) -> Markup:
    b.nodes -= 1
    if not isinstance(v, dict | list):
        return _scalar(v, max_str)
    if not v:
        return Markup('<span class="j-lit">%s</span>') % ("{}" if isinstance(v, dict) else "[]")
    is_dict = isinstance(v, dict)
    n = len(v)
    label = f"{{…}} {n} key{'s' if n != 1 else ''}" if is_dict else f"[…] {n} item{'s' if n != 1 else ''}"
    parts: list[Markup] = []
    pairs: list[tuple[Any, Any]] = (list(islice(v.items(), max_items)) if isinstance(v, dict)
                                    else list(enumerate(v[:max_items])))
    for k, child in pairs:
        if b.nodes <= 0:
            b.cut = True
            parts.append(Markup('<li class="j-more">… truncated here (open the raw JSON for everything)</li>'))
            break
        key = (Markup('<span class="j-key">"%s"</span>: ') % str(k)) if is_dict else Markup("")
        parts.append(Markup("<li>") + key + _node(child, depth + 1, b, max_items, max_str, open_depth)
                     + Markup("</li>"))
    else:
        if n > max_items:
            parts.append(Markup('<li class="j-more">… %s more %s</li>') % (f"{n - max_items:,}",
                                                                          "keys" if is_dict else "items"))
    opened = " open" if depth < open_depth else ""
    return (Markup('<details class="j"%s><summary>%s</summary><ul>') % (Markup(opened), label)
            + Markup("").join(parts) + Markup("</ul></details>"))


def json_tree(value: Any, *, max_nodes: int = JSON_MAX_NODES, max_items: int = JSON_MAX_ITEMS,
              max_str: int = JSON_MAX_STR, open_depth: int = JSON_OPEN_DEPTH) -> Markup:
    """Collapsible, escaped HTML for a JSON value, bounded in nodes, items and characters."""
    b = _Budget(max_nodes)
    return Markup('<div class="json">') + _node(value, 0, b, max_items, max_str, open_depth) + Markup("</div>")


# --- chat messages -------------------------------------------------------------------------------


def _text_of(content: Any) -> tuple[str, list[Any]]:
    """(text, other parts) of a message's content: a string or a list of typed parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if isinstance(content, list):
        texts: list[str] = []
        other: list[Any] = []
        for p in content:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                texts.append(p["text"])
            elif isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image"):
                texts.append("[image]")
            else:
                other.append(p)
        return "\n".join(texts), other
    return "", [content]


def _is_msg(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("role"), str)


def _messages_of(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, list) and value and all(_is_msg(m) for m in value):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list) and value["messages"] and all(
            _is_msg(m) for m in value["messages"]
        ):
            return value["messages"]
        if _is_msg(value) and ("content" in value or "tool_calls" in value):
            return [value]
        choices = value.get("choices")
        if isinstance(choices, list) and choices:
            msgs = [c.get("message") for c in choices if isinstance(c, dict)]
            if msgs and all(_is_msg(m) for m in msgs):
                return msgs  # type: ignore[return-value]
    return None


def chat_messages(value: Any, *, default_role: str | None = None) -> list[dict[str, Any]] | None:
    """Messages to show as chat bubbles, or None when ``value`` does not look like a chat.

    Accepts OpenAI-style message lists, ``{"messages": [...]}``, one message, a completion
    (``{"choices": [{"message": ...}]}``) and, with ``default_role``, a plain string.
    Each item: role, name, text (capped), truncated (int chars cut), extra (tool calls, other parts).
    """
    msgs = _messages_of(value)
    if msgs is None:
        if default_role and isinstance(value, str):
            msgs = [{"role": default_role, "content": value}]
        else:
            return None
    out: list[dict[str, Any]] = []
    for m in msgs[:CHAT_MAX_MESSAGES]:
        text, other = _text_of(m.get("content"))
        extra: dict[str, Any] = {}
        if other:
            extra["content"] = other
        for k in ("tool_calls", "function_call", "tool_call_id"):
            if m.get(k) is not None:
                extra[k] = m[k]
        cut = max(0, len(text) - CHAT_MAX_CHARS)
        out.append({
            "role": str(m.get("role")),
            "name": m.get("name") if isinstance(m.get("name"), str) else None,
            "text": text[:CHAT_MAX_CHARS],
            "truncated": cut,
            "extra": extra or None,
        })
    if len(msgs) > CHAT_MAX_MESSAGES:
        out.append({"role": "note", "name": None, "text": f"… {len(msgs) - CHAT_MAX_MESSAGES} more messages",
                    "truncated": 0, "extra": None})
    return out


_TURN_KEYS = ("content", "text", "message", "question", "query", "input", "prompt", "answer", "output",
              "response", "result")


def turn_text(value: Any, *, role: str) -> str | None:
    """One short text for a trace's input (``role="user"``) or output (``role="assistant"``),
    used to read a session as a conversation. None when there is nothing."""
    if value is None:
        return None
    text: str | None = None
    msgs = _messages_of(value)
    if isinstance(value, str):
        text = value
    elif msgs:
        wanted = [m for m in msgs if m.get("role") == role] or msgs
        text = _text_of(wanted[-1].get("content"))[0] or None
    elif isinstance(value, dict):
        strs = {k: v for k, v in value.items() if isinstance(v, str)}
        if len(value) == 1 and strs:
            text = next(iter(strs.values()))
        else:
            for k in _TURN_KEYS:
                if isinstance(value.get(k), str):
                    text = value[k]
                    break
    if text is None:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) > TURN_MAX_CHARS:
        text = text[:TURN_MAX_CHARS] + f" … ({len(text) - TURN_MAX_CHARS:,} more characters)"
    return text


# --- prompt templates -------------------------------------------------------------------------------

_MUSTACHE_VAR = re.compile(r"(?<!\\)\{\{\{?\s*[A-Za-z_][A-Za-z0-9_]*\s*\}?\}\}")
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
TEMPLATE_MAX_CHARS = 50_000


def highlight_template(text: Any, fmt: str = "mustache", *, max_chars: int = TEMPLATE_MAX_CHARS) -> Markup:
    """A template string, escaped, with its variables (``{{name}}``) or Jinja tags marked."""
    s = str(text if text is not None else "")
    cut = max(0, len(s) - max_chars)
    esc = str(escape(s[:max_chars]))  # braces and names survive escaping unchanged
    pattern = _JINJA_TAG if fmt == "jinja2" else _MUSTACHE_VAR
    out = Markup(pattern.sub(lambda m: f'<mark class="var">{m.group(0)}</mark>', esc))
    if cut:
        out += Markup('<span class="j-more"> … %s more characters</span>') % f"{cut:,}"
    return out


def template_messages(template: Any, fmt: str = "mustache") -> list[dict[str, Any]]:
    """A chat prompt's messages for display: role, name, highlighted text, placeholders, extras."""
    out: list[dict[str, Any]] = []
    if not isinstance(template, list):
        return out
    for m in template[:CHAT_MAX_MESSAGES]:
        if not isinstance(m, dict):
            out.append({"role": "note", "placeholder": None, "name": None, "html": highlight_template(m, fmt),
                        "extra": None})
            continue
        if m.get("type") == "placeholder":
            out.append({"role": "placeholder", "placeholder": str(m.get("name")), "name": None, "html": None,
                        "extra": None})
            continue
        text, other = _text_of(m.get("content"))
        extra = {k: v for k, v in m.items() if k not in ("role", "content", "name")}
        if other:
            extra["content"] = other
        out.append({"role": str(m.get("role")), "placeholder": None,
                    "name": m.get("name") if isinstance(m.get("name"), str) else None,
                    "html": highlight_template(text, fmt), "extra": extra or None})
    if len(template) > CHAT_MAX_MESSAGES:
        out.append({"role": "note", "placeholder": None, "name": None, "extra": None,
                    "html": Markup("… %s more messages") % (len(template) - CHAT_MAX_MESSAGES)})
    return out


def pretty_json(value: Any, *, max_chars: int = 200_000) -> str:
    """Indented JSON, cut after ``max_chars`` characters (a version is at most 1 MB)."""
    try:
        s = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        s = str(value)
    if len(s) > max_chars:
        s = s[:max_chars] + f"\n… {len(s) - max_chars:,} more characters"
    return s


def brief(value: Any, n: int = 240) -> str:
    """A value as one short line of text (JSON for structures), cut after ``n`` characters."""
    if value is None:
        return ""
    if isinstance(value, str):
        s = value
    else:
        try:
            s = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            s = str(value)
    return s if len(s) <= n else s[:n] + f"… ({len(s) - n:,} more)"


def fmt_num(v: Any, digits: int = 3) -> str:
    """A metric value: ``0.75``, ``12.5``, ``1.2e-05``; ``—`` for none."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return f"{float(v):.{digits}g}"
    return str(v)


def fmt_signed(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    x = float(v)
    return ("+" if x > 0 else "") + f"{x:.{digits}g}"


def targets_text(targets: list[dict[str, Any]] | None) -> str:
    """``v3`` or ``v3 90% · v4 10%`` for a label's targets."""
    if not targets:
        return "—"
    if len(targets) == 1:
        return f"v{targets[0]['version']}"
    total = sum(float(t["weight"]) for t in targets) or 1.0
    return " · ".join(f"v{t['version']} {float(t['weight']) / total * 100:.0f}%" for t in targets)


def target_shares(targets: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Each target with its share of traffic in percent (weights are relative)."""
    if not targets:
        return []
    total = sum(float(t["weight"]) for t in targets) or 1.0
    return [{"version": t["version"], "weight": t["weight"], "pct": float(t["weight"]) / total * 100}
            for t in targets]


# --- side-by-side diff -----------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DIFF_MAX_ROWS = 4000
DIFF_INLINE_MAX = 2000


def _inline(a: str, b: str) -> tuple[Markup, Markup]:
    """Two changed lines with the differing characters marked (``<del>``/``<ins>``)."""
    if len(a) > DIFF_INLINE_MAX or len(b) > DIFF_INLINE_MAX:
        return Markup(escape(a)), Markup(escape(b))
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    left: list[Markup] = []
    right: list[Markup] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            left.append(Markup(escape(a[i1:i2])))
            right.append(Markup(escape(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(Markup("<del>%s</del>") % a[i1:i2])
        if j2 > j1:
            right.append(Markup("<ins>%s</ins>") % b[j1:j2])
    return Markup("").join(left), Markup("").join(right)


def side_by_side(unified: str, *, max_rows: int = DIFF_MAX_ROWS) -> dict[str, Any]:
    """Rows for a two-column view of a unified diff (what the registry's diff returns).

    Each row: ``kind`` (``same``, ``change``, ``del``, ``add``, ``gap``), line numbers and
    escaped text per side (changed pairs with the differing characters marked). A ``gap``
    row stands for unchanged lines the diff leaves out. ``cut``: rows left out past ``max_rows``.
    """
    rows: list[dict[str, Any]] = []
    left_no = right_no = 0
    dels: list[tuple[int, str]] = []
    adds: list[tuple[int, str]] = []
    cut = 0

    def push(row: dict[str, Any]) -> None:
        nonlocal cut
        if len(rows) >= max_rows:
            cut += 1
        else:
            rows.append(row)

    def flush() -> None:
        for i in range(max(len(dels), len(adds))):
            d = dels[i] if i < len(dels) else None
            a = adds[i] if i < len(adds) else None
            if d and a:
                lt, rt = _inline(d[1], a[1])
                push({"kind": "change", "ln": d[0], "left": lt, "rn": a[0], "right": rt})
            elif d:
                push({"kind": "del", "ln": d[0], "left": Markup(escape(d[1])), "rn": None, "right": None})
            elif a:
                push({"kind": "add", "ln": None, "left": None, "rn": a[0], "right": Markup(escape(a[1]))})
        dels.clear()
        adds.clear()

    prev_end = 1
    for line in unified.splitlines():
        if line.startswith(("--- ", "+++ ")) and not rows and not dels and not adds and left_no == 0:
            continue
        m = _HUNK.match(line)
        if m:
            flush()
            left_no, right_no = int(m.group(1)), int(m.group(3))
            start = max(left_no, 1)
            if start > prev_end:
                push({"kind": "gap", "text": f"{start - prev_end:,} unchanged line{'s' if start - prev_end != 1 else ''}"})
            continue
        if line.startswith("\\"):
            continue  # "\ No newline at end of file"
        tag, text = line[:1], line[1:]
        if tag == "-":
            dels.append((left_no, text))
            left_no += 1
        elif tag == "+":
            adds.append((right_no, text))
            right_no += 1
        else:
            flush()
            push({"kind": "same", "ln": left_no, "left": Markup(escape(text)), "rn": right_no,
                  "right": Markup(escape(text))})
            left_no += 1
            right_no += 1
        prev_end = left_no
    flush()
    return {"rows": rows, "cut": cut}


# --- the environment ------------------------------------------------------------------------------


def _score_value(s: dict[str, Any]) -> str:
    v = s.get("value")
    if s.get("data_type") == "boolean":
        return "thumbs up" if v else "thumbs down"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dur=fmt_duration,
        money=fmt_money,
        num=fmt_int,
        pct=fmt_pct,
        ts=fmt_time,
        iso=fmt_iso,
        ago=fmt_ago,
        bytes=fmt_bytes,
        seg=path_segment,
        pseg=path_segments,
        json_tree=json_tree,
        score_value=_score_value,
        tmpl=highlight_template,
        pretty_json=pretty_json,
        targets=targets_text,
        brief=brief,
        metric=fmt_num,
        signed=fmt_signed,
    )
    env.globals.update(query=query, chat_messages=chat_messages, json_size=json_size, turn_text=turn_text,
                       template_messages=template_messages, target_shares=target_shares)
    return env

"""Record shapes of the training-data export: chat messages from trace input/output, and the
SFT (OpenAI fine-tuning chat format), DPO and KTO (TRL) records built from them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["FORMATS", "Format", "Message", "assistant_text", "normalise", "prompt_messages", "record_from_item"]

Format = Literal["sft", "dpo", "kto"]
FORMATS: tuple[Format, ...] = ("sft", "dpo", "kto")
Message = dict[str, str]
_ROLES = {"system", "user", "assistant"}


def _text(content: Any) -> str:
    """A message's content as text (a multimodal part list keeps its text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") if isinstance(p, Mapping) else str(p) for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return json.dumps(content, sort_keys=True, ensure_ascii=False)


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, Mapping) and "role" in m for m in v)


def prompt_messages(value: Any) -> list[Message] | None:
    """The input as chat messages: a message list (a gateway trace's input) or a request body
    with ``messages`` is reused (roles system/user/assistant; a tool message becomes a user
    message); plain text is one user message; any other JSON value is one user message of its
    JSON text. None when there is no input."""
    if isinstance(value, Mapping) and _is_messages(value.get("messages")):
        value = value["messages"]
    if _is_messages(value):
        out = []
        for m in value:
            role = str(m["role"])
            text = _text(m.get("content"))
            if not text:
                continue
            out.append({"role": role if role in _ROLES else "user", "content": text})
        return out or None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": "user", "content": json.dumps(value, sort_keys=True, ensure_ascii=False)}]


def assistant_text(value: Any) -> str | None:
    """The output as the assistant's text: a string, a message (``content``), an OpenAI
    response (``choices[0].message.content``), the last assistant message of a list, or the JSON
    text of anything else. None when empty."""
    if isinstance(value, Mapping):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            msg = choices[0].get("message") or {}
            value = msg.get("content") if isinstance(msg, Mapping) else None
        elif "content" in value and "role" in value:
            value = value.get("content")
    elif _is_messages(value):
        last = [m for m in value if m.get("role") == "assistant"] or value
        value = last[-1].get("content")
    if value is None:
        return None
    text = value if isinstance(value, str) else _text(value)
    return text if text.strip() else None


def normalise(value: Any) -> str:
    """Text for equality: whitespace collapsed, case folded (dedup and DPO grouping)."""
    if _is_messages(value):
        return "\n".join(f"{m['role']}: {normalise(_text(m.get('content')))}" for m in value)
    raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return re.sub(r"\s+", " ", raw).strip().casefold()


def record_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The training record of a dataset item written by an export (the JSONL line)."""
    meta = item.get("metadata") or {}
    fmt = meta.get("format")
    prompt: list[Message] = list(item.get("input") or [])
    expected: Any = item.get("expected")
    if fmt == "sft":
        return {"messages": [*prompt, {"role": "assistant", "content": expected}]}
    if fmt == "dpo":
        return {"prompt": prompt, "chosen": expected["chosen"], "rejected": expected["rejected"]}
    if fmt == "kto":
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": expected}],
                "label": bool((item.get("labels") or {}).get("label"))}
    raise ValueError("not an exported item")

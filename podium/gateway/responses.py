"""OpenAI's Responses API (``POST /v1/responses``) on top of the gateway's chat path.

A Responses request is translated into a chat-completions body, which then takes the
exact path of ``/v1/chat/completions`` (alias, limits, budgets, cache, routing, fallbacks,
the ``generation`` span), and the chat answer is translated back:

* ``input`` (a string, or a list of input items) → ``messages``: message items (``role``
  user/system/developer/assistant; ``input_text``/``output_text`` parts → text parts,
  ``input_image`` → ``image_url``, ``input_file`` → ``file``, ``input_audio`` as is),
  ``function_call`` items → an assistant message's ``tool_calls`` (consecutive calls are
  one turn), ``function_call_output`` → a ``role: tool`` message; ``reasoning`` items are
  dropped. ``instructions`` → a leading system message.
* ``max_output_tokens`` → ``max_completion_tokens``; ``temperature``, ``top_p``, ``user``,
  ``parallel_tool_calls``, ``service_tier``, ``prompt_cache_key``, ``safety_identifier`` as
  they are; ``reasoning.effort`` → ``reasoning_effort``; ``text.format`` (``json_object``,
  ``json_schema``) → ``response_format``; ``metadata`` → the trace's metadata (Podium's
  ``podium.metadata`` wins). Other Responses fields (``store``, ``include``,
  ``truncation``…) are ignored.
* ``tools``: function tools ``{"type": "function", "name", "description", "parameters",
  "strict"}`` → chat tools; ``tool_choice`` likewise. Built-in tools (web search, file
  search, computer use…) need OpenAI's own servers and are refused with a 400.
* The answer: text → a ``message`` output item with an ``output_text`` part, tool calls →
  ``function_call`` items, ``usage`` → ``input_tokens``/``output_tokens``/``total_tokens``;
  ``finish_reason: length`` → ``status: incomplete`` (``max_output_tokens``).
* Streams: chat chunks → the Responses event sequence (``response.created``,
  ``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta``… ``response.completed``), see :class:`ResponseStream`.

Podium stores no responses: ``previous_response_id``, ``conversation``, ``background`` and
``item_reference`` inputs are refused with a 400 that says to send the whole conversation.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from podium.errors import ValidationFailed

__all__ = ["ResponseStream", "check_responses", "to_chat", "to_response"]

_ROLES = frozenset({"user", "system", "developer", "assistant"})
_PASS = ("temperature", "top_p", "user", "parallel_tool_calls", "service_tier", "prompt_cache_key",
         "safety_identifier", "podium", "stream")
_UNSUPPORTED = {
    "previous_response_id": "Podium's gateway does not store responses: leave out `previous_response_id` and "
                            "send the earlier turns (and their output items) in `input`",
    "conversation": "Podium's gateway does not store conversations: leave out `conversation` and send the "
                    "earlier turns in `input`",
    "prompt": "stored prompt templates are OpenAI-hosted: leave out `prompt` (Podium's own prompts: "
              "`podium.get_prompt(...)`) and send `input`",
}
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _bad(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": param, "message": message}])


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# --- request ---------------------------------------------------------------------------------


def check_responses(body: dict[str, Any]) -> None:
    """Checks of the Responses-only fields (the chat checks run on the translated body)."""
    m = body.get("model")
    if not isinstance(m, str) or not m:
        raise _bad("model", "`model` is required: a model alias such as \"local\" (GET /v1/models lists them)")
    for name, why in _UNSUPPORTED.items():
        if body.get(name) is not None:
            raise _bad(name, why)
    if body.get("background"):
        raise _bad("background", "background responses need stored responses, which Podium's gateway does not "
                                 "keep: leave out `background` (or set it to false)")
    x = body.get("input")
    if not (isinstance(x, str) and x) and not (isinstance(x, list) and x):
        raise _bad("input", "`input` must be a non-empty string or a non-empty list of input items such as "
                            "{\"role\": \"user\", \"content\": \"Hello\"}")
    ins = body.get("instructions")
    if ins is not None and not isinstance(ins, str):
        raise _bad("instructions", "`instructions` must be a string (the system message)")
    mot = body.get("max_output_tokens")
    if mot is not None and (not isinstance(mot, int) or isinstance(mot, bool) or mot < 1):
        raise _bad("max_output_tokens", "`max_output_tokens` must be a positive integer")
    s = body.get("stream")
    if s is not None and not isinstance(s, bool):
        raise _bad("stream", "`stream` must be true or false")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a Responses request (raises ValidationFailed)."""
    check_responses(body)
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    x = body["input"]
    if isinstance(x, str):
        messages.append({"role": "user", "content": x})
    else:
        for i, item in enumerate(x):
            _input_item(item, i, messages)
    if not any(m["role"] != "system" for m in messages):
        raise _bad("input", "`input` holds no message for the model to answer: add a user message")
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for k in _PASS:
        if body.get(k) is not None:
            chat[k] = body[k]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    meta = body.get("metadata")
    if isinstance(meta, dict) and meta:  # OpenAI keeps it with the stored response; Podium, in the trace
        extra = chat.get("podium")
        extra = extra if isinstance(extra, dict) else {}
        if extra.get("metadata") is None:
            chat["podium"] = {**extra, "metadata": meta}
    fmt = _text_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "`tools` must be a list of {\"type\": \"function\", \"name\", \"parameters\"} tools")
        if tools:
            chat["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    tc = body.get("tool_choice")
    if tc is not None:
        chat["tool_choice"] = _tool_choice(tc)
    return chat


def _input_item(item: Any, i: int, messages: list[dict[str, Any]]) -> None:
    where = f"input.{i}"
    if isinstance(item, str):
        messages.append({"role": "user", "content": item})
        return
    if not isinstance(item, dict):
        raise _bad(where, f"input[{i}] must be an object such as {{\"role\": \"user\", \"content\": \"Hello\"}}")
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise _bad(f"{where}.role", f"input[{i}].role must be one of {', '.join(sorted(_ROLES))}")
        content = _content(item.get("content"), f"{where}.content", assistant=role == "assistant")
        messages.append({"role": role, "content": content})
    elif kind == "function_call":
        name, args = item.get("name"), item.get("arguments")
        if not isinstance(name, str) or not name or not isinstance(args, str):
            raise _bad(where, f"input[{i}]: a function_call item needs `name` and `arguments` (a JSON string)")
        call = {"id": item.get("call_id") or item.get("id") or _new_id("call"), "type": "function",
                "function": {"name": name, "arguments": args}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":  # one assistant turn: text and its calls
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"{where}.call_id", f"input[{i}]: a function_call_output item needs the `call_id` of its "
                                           "function_call")
        out = item.get("output")
        if isinstance(out, list):
            out = "".join(p.get("text") or "" for p in out if isinstance(p, dict))
        elif not isinstance(out, str):
            out = json.dumps(out)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": out})
    elif kind == "reasoning":
        return  # the chat API has no place for a previous turn's reasoning
    elif kind == "item_reference":
        raise _bad(where, f"input[{i}]: Podium's gateway does not store items; send the item itself instead of "
                          "an item_reference")
    else:
        raise _bad(f"{where}.type", f"input[{i}].type {kind!r} is not supported by Podium's gateway; use message, "
                                    "function_call, function_call_output or reasoning items")


def _content(content: Any, where: str, *, assistant: bool) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(where, f"{where} must be a string or a list of content parts such as "
                          "{\"type\": \"input_text\", \"text\": \"Hello\"}")
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(p.get("text"), str):
            parts.append({"type": "text", "text": p["text"]})
        elif kind == "refusal" and isinstance(p.get("refusal"), str):
            parts.append({"type": "text", "text": p["refusal"]})
        elif kind == "input_image" and not assistant:
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise _bad(f"{where}.{j}", f"{where}[{j}]: an input_image needs `image_url` (a URL or a data: URL); "
                                           "uploaded file ids are not supported")
            image: dict[str, Any] = {"url": url}
            if p.get("detail"):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and not assistant:
            file = {k: p[k] for k in ("file_data", "file_id", "filename") if p.get(k) is not None}
            parts.append({"type": "file", "file": file})
        elif kind == "input_audio" and not assistant:
            parts.append({"type": "input_audio", "input_audio": p.get("input_audio")})
        else:
            raise _bad(f"{where}.{j}", f"{where}[{j}]: content part type {kind!r} is not supported; use "
                                       "input_text, input_image, input_file or input_audio")
    if assistant:  # the chat API wants an assistant's earlier answer as text
        return "".join(p["text"] for p in parts)
    return parts


def _text_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise _bad("text.format.schema", "`text.format.schema` must be a JSON Schema object")
        js = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        js.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": js}
    raise _bad("text.format", "`text.format.type` must be text, json_object or json_schema")


def _tool(t: Any, i: int) -> dict[str, Any]:
    kind = t.get("type") if isinstance(t, dict) else None
    if kind != "function":
        raise _bad(f"tools.{i}", f"tools[{i}]: only function tools are supported by Podium's gateway (got "
                                 f"{kind!r}); built-in tools such as web_search run on OpenAI's servers only")
    if "function" in t and isinstance(t["function"], dict):  # already in chat form
        return {"type": "function", "function": t["function"]}
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"tools.{i}.name", f"tools[{i}] needs a `name`")
    fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}
    return {"type": "function", "function": fn}


def _tool_choice(tc: Any) -> Any:
    if tc in ("auto", "none", "required"):
        return tc
    if isinstance(tc, dict) and tc.get("type") == "function" and isinstance(tc.get("name"), str):
        return {"type": "function", "function": {"name": tc["name"]}}
    raise _bad("tool_choice", "`tool_choice` must be auto, none, required or {\"type\": \"function\", \"name\": ...}")


# --- answer --------------------------------------------------------------------------------


def _usage(u: Any) -> dict[str, Any] | None:
    """Chat usage → Responses usage."""
    if not isinstance(u, dict):
        return None
    n_in, n_out = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    pd = u.get("prompt_tokens_details")
    pd = pd if isinstance(pd, dict) else {}
    cd = u.get("completion_tokens_details")
    cd = cd if isinstance(cd, dict) else {}
    return {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": int(pd.get("cached_tokens") or 0)},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": int(cd.get("reasoning_tokens") or 0)},
        "total_tokens": int(u.get("total_tokens") or 0) or n_in + n_out,
    }


def _envelope(body: dict[str, Any], resp_id: str, created: int, model: str, status: str) -> dict[str, Any]:
    """The response object around the output: what OpenAI echoes back from the request."""
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _finish(resp: dict[str, Any], finish_reason: Any) -> None:
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is not None:
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": reason}
    else:
        resp["status"] = "completed"


def _message_item(item_id: str, text: str, status: str, refusal: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    else:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def to_response(body: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses object for the Responses request ``body`` answered by ``chat`` (a chat.completion)."""
    choice = (chat.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    resp = _envelope(body, _new_id("resp"), int(chat.get("created") or time.time()),
                     str(chat.get("model") or body.get("model")), "completed")
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    calls = msg.get("tool_calls") or []
    if text or msg.get("refusal") or not calls:
        resp["output"].append(_message_item(_new_id("msg"), text or "", "completed", msg.get("refusal")))
    for tc in calls:
        fn = tc.get("function") or {}
        resp["output"].append(_call_item(_new_id("fc"), tc.get("id") or _new_id("call"), fn.get("name") or "",
                                         fn.get("arguments") or "", "completed"))
    _finish(resp, choice.get("finish_reason"))
    resp["usage"] = _usage(chat.get("usage"))
    return resp


class ResponseStream:
    """Chat chunks in, Responses stream events out.

    ``start()`` → ``response.created`` and ``response.in_progress``; ``feed(chunk)`` →
    the events for one chat chunk (an output item is opened when its first delta arrives
    and closed when another item starts or the stream ends); ``finish(usage)`` → the
    remaining ``.done`` events and ``response.completed`` (``response.incomplete`` when
    the model hit ``max_output_tokens``); ``fail(error)`` → ``error`` and ``response.failed``.
    Every event has ``type`` and a ``sequence_number``.
    """

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.resp = _envelope(body, _new_id("resp"), int(time.time()), str(body.get("model")), "in_progress")
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.open_key: Any = None  # "text" or ("tool", index)
        self.finish_reason: str | None = None
        self.model_seen = False

    def _ev(self, kind: str, **fields: Any) -> dict[str, Any]:
        ev = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def _snapshot(self) -> dict[str, Any]:
        return {**self.resp, "output": list(self.output)}

    def start(self) -> list[dict[str, Any]]:
        return [self._ev("response.created", response=self._snapshot()),
                self._ev("response.in_progress", response=self._snapshot())]

    def _open(self, key: Any, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self.open, self.open_key = item, key
        index = len(self.output)
        if item["type"] == "message":
            added = {**item, "content": []}
            events.append(self._ev("response.output_item.added", output_index=index, item=added))
            events.append(self._ev("response.content_part.added", item_id=item["id"], output_index=index,
                                   content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                          "logprobs": []}))
        else:
            events.append(self._ev("response.output_item.added", output_index=index, item={**item}))
        return events

    def _close(self) -> list[dict[str, Any]]:
        item = self.open
        if item is None:
            return []
        index = len(self.output)
        events = []
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            events.append(self._ev("response.output_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=part["text"], logprobs=[]))
            events.append(self._ev("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part=part))
        else:
            events.append(self._ev("response.function_call_arguments.done", item_id=item["id"],
                                   output_index=index, name=item["name"], arguments=item["arguments"]))
        events.append(self._ev("response.output_item.done", output_index=index, item=item))
        self.output.append(item)
        self.open, self.open_key = None, None
        return events

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.model_seen and chunk.get("model"):
            self.resp["model"] = chunk["model"]
            self.model_seen = True
        events: list[dict[str, Any]] = []
        for ch in chunk.get("choices") or ():
            if ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.open_key != "text":
                    events += self._open("text", _message_item(_new_id("msg"), "", "in_progress"))
                item = self.open
                assert item is not None
                item["content"][0]["text"] += text
                events.append(self._ev("response.output_text.delta", item_id=item["id"], output_index=len(self.output),
                                       content_index=0, delta=text, logprobs=[]))
            for tc in delta.get("tool_calls") or ():
                key = ("tool", tc.get("index", 0))
                fn = tc.get("function") or {}
                if self.open_key != key:
                    events += self._open(key, _call_item(_new_id("fc"), tc.get("id") or _new_id("call"),
                                                         fn.get("name") or "", "", "in_progress"))
                item = self.open
                assert item is not None
                if fn.get("name") and not item["name"]:
                    item["name"] = fn["name"]
                if fn.get("arguments"):
                    item["arguments"] += fn["arguments"]
                    events.append(self._ev("response.function_call_arguments.delta", item_id=item["id"],
                                           output_index=len(self.output), delta=fn["arguments"]))
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return events

    def finish(self, chat_usage: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.open is None and not self.output:  # nothing was said: still one (empty) message
            events += self._open("text", _message_item(_new_id("msg"), "", "in_progress"))
        events += self._close()
        resp = self._snapshot()
        _finish(resp, self.finish_reason)
        resp["usage"] = _usage(chat_usage)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        events.append(self._ev(kind, response=resp))
        return events

    def fail(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        """``error``: OpenAI's error object (``{"message", "type", "param", "code"}``)."""
        resp = self._snapshot()
        resp["status"] = "failed"
        resp["error"] = {"code": error.get("code") or error.get("type") or "server_error",
                         "message": error.get("message") or "the model call failed"}
        return [self._ev("error", code=resp["error"]["code"], message=resp["error"]["message"],
                         param=error.get("param")),
                self._ev("response.failed", response=resp)]

"""Answers with citations: the messages a RAG call sends, and the citations read back.

A prompt version binds its ``{{context}}`` variable to a collection through its config::

    {"retrieval": {"collection": "docs", "top_k": 4, "mode": "hybrid", "filters": {...}}}

Compiling it for a question fills ``context`` with the retrieved chunks as numbered passages
(:func:`podium.rag.service.format_context`) and ``question`` with the question. Without a
prompt, :data:`DEFAULT_SYSTEM` and :data:`DEFAULT_USER` are used. The model is asked to cite
passages as ``[1]``, ``[2]``; :func:`citations` maps those numbers back to the chunks and their
documents (numbers that name no passage are reported as ``unknown``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from podium.errors import ValidationFailed
from podium.rag.search import Hit

__all__ = ["DEFAULT_SYSTEM", "DEFAULT_USER", "citations", "default_messages", "retrieval_config"]

DEFAULT_SYSTEM = ("Answer the question using only the numbered context passages. After each sentence, cite the "
                  "passages it relies on as [1], [2]. If the passages do not contain the answer, say you do not know.")
DEFAULT_USER = "Context:\n{context}\n\nQuestion: {question}"
_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


def default_messages(context: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM},
            {"role": "user", "content": DEFAULT_USER.format(context=context, question=question)}]


def retrieval_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A prompt version's ``retrieval`` block, checked (``None`` when it has none)."""
    r = (config or {}).get("retrieval")
    if r is None:
        return None
    if not isinstance(r, Mapping) or not isinstance(r.get("collection"), str):
        raise ValidationFailed('the prompt\'s config.retrieval must be {"collection": NAME, "top_k"?, "mode"?, '
                               '"filters"?}', details=[{"field": "config.retrieval", "message": "invalid"}])
    return dict(r)


def citations(answer: str, hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Each distinct ``[n]`` in ``answer``, in order of first appearance, resolved to its chunk."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for m in _CITE.finditer(answer or ""):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part.strip())
            if n in seen:
                continue
            seen.add(n)
            if 1 <= n <= len(hits):
                h = hits[n - 1]
                out.append({"n": n, "chunk_id": h.id, "document_id": h.document_id, "title": h.title,
                            "source": h.source, "heading": h.heading, "score": h.score})
            else:
                out.append({"n": n, "unknown": True})
    return out

"""Knowledge collections from the SDK: ``podium.get_client().collections`` (docs/rag.md).

A thin layer over the REST API (the same retrying transport as :class:`podium.sdk.evals.EvalClient`);
nothing here parses, embeds or indexes (the server does), so the SDK stays light. A search made
inside a traced function records its ``retrieval`` span in that trace, under the current span.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from podium.sdk.context import get_current_span_id, get_current_trace_id
from podium.sdk.evals import EvalClient

__all__ = ["CollectionClient"]


class CollectionClient:
    def __init__(self, http: EvalClient) -> None:
        self._http = http

    @staticmethod
    def _p(name: str, suffix: str = "") -> str:
        return f"/collections/{quote(name, safe='')}{suffix}"

    def list(self) -> builtins.list[dict[str, Any]]:
        out: builtins.list[dict[str, Any]] = self._http.request("GET", "/collections")["data"]
        return out

    def get(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self._http.request("GET", self._p(name))
        return out

    def create(self, name: str, *, chunking: Mapping[str, Any] | None = None, embedder: str | None = None,
               description: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "description": description}
        if chunking:
            body["chunking"] = dict(chunking)
        if embedder:
            body["embedder"] = embedder
        out: dict[str, Any] = self._http.request("POST", "/collections", json=body, retries=0)
        return out

    def add_texts(self, name: str, documents: Sequence[Mapping[str, Any]], *, replace: bool = False,
                  message: str | None = None) -> dict[str, Any]:
        """``documents``: ``[{"name": "notes.md", "text": "...", "metadata": {...}}]``."""
        out: dict[str, Any] = self._http.request("POST", self._p(name, "/documents"), json={
            "documents": [dict(d) for d in documents], "replace": replace, "message": message})
        return out

    def add_files(self, name: str, paths: Sequence[str | Path], *, metadata: Mapping[str, Any] | None = None,
                  replace: bool = False, message: str | None = None) -> dict[str, Any]:
        """Upload files (txt, md, html, pdf) as one new version; ids are the file names."""
        import json

        files = [("file", (Path(p).name, Path(p).read_bytes(), "application/octet-stream")) for p in paths]
        data: dict[str, str] = {"replace": "true" if replace else "false"}
        if metadata:
            data["metadata"] = json.dumps(dict(metadata))
        if message:
            data["message"] = message
        out: dict[str, Any] = self._http.request("POST", self._p(name, "/documents"), files=files, data=data)
        return out

    def search(self, name: str, query: str, *, mode: str = "hybrid", top_k: int = 5,
               filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"data": [hits], "context": "[1] ...", "trace_id", ...}``; traced in the current trace."""
        body: dict[str, Any] = {"query": query, "mode": mode, "top_k": top_k, "filters": dict(filters or {})}
        trace_id = get_current_trace_id()
        if trace_id:
            body["trace_id"] = trace_id
            body["parent_id"] = get_current_span_id()
        out: dict[str, Any] = self._http.request("POST", self._p(name, "/search"), json=body)
        return out

    def answer(self, name: str, question: str, *, model: str | None = None, prompt: str | None = None,
               top_k: int | None = None, mode: str | None = None, **params: Any) -> dict[str, Any]:
        """An answer through the gateway with ``citations`` resolved to documents."""
        body: dict[str, Any] = {"question": question, "model": model, "top_k": top_k, "mode": mode, "params": params}
        if prompt:
            body["prompt"] = {"name": prompt}
        out: dict[str, Any] = self._http.request("POST", self._p(name, "/answer"), json=body, retries=0)
        return out

"""Datasets and experiments over the REST API.

::

    import podium

    ds = podium.create_dataset("qa", [{"input": {"question": "2+2?"}, "expected": "4"}])   # version 1
    ds = podium.create_dataset("qa", "qa.jsonl")          # the file's items as the next version
    ds = podium.get_dataset("qa", version=1)              # a Dataset: items of that version
    result = podium.evaluate(dataset="qa", task=answer, scorers=["exact-match"])

:class:`EvalClient` (``podium.get_client().evals``) has every call: datasets (create, items,
versions, from traces) and experiments (create, items, finish, compare).

``podium.evaluate`` is not here: it runs in ``podium.experiments``, a layer above the SDK that
takes the client as a parameter (the facade in ``podium/__init__.py`` passes the default one).
The SDK imports nothing above itself; ``lint-imports`` checks that.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from podium.core.datasets import Dataset, DatasetItem, items_from_records, parse_dataset_file
from podium.errors import (
    ConfigurationError,
    NotFound,
    ServiceUnavailable,
)
from podium.sdk.responses import error_from_response

__all__ = ["EvalClient", "create_dataset", "get_dataset"]

_UPLOAD_CHUNK = 2000



def _items(items: Any) -> list[DatasetItem]:
    if isinstance(items, str | Path):
        return parse_dataset_file(items)
    if isinstance(items, Dataset):
        return list(items.items)
    return items_from_records(list(items))


class EvalClient:
    """Datasets and experiments on a Podium server. Writes retry on 429/5xx/network errors
    (they are idempotent: items by id, experiment items by item and repetition)."""

    def __init__(self, *, base_url: str, public_key: str | None, secret_key: str | None, timeout: float = 30.0,
                 http_client: httpx.Client | None = None, retries: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        if public_key and secret_key:
            self._auth: Any = httpx.BasicAuth(public_key, secret_key)
            self._headers: dict[str, str] = {}
        else:
            self._auth = None
            self._headers = {"Authorization": f"Bearer {secret_key}"} if secret_key else {}
        self._has_key = bool(secret_key)
        self._timeout = timeout
        self._own = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self.retries = retries
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._own:
            self._http.close()

    def request(self, method: str, path: str, *, retries: int | None = None, **kw: Any) -> Any:
        """``/api/v1`` + ``path``; the JSON reply, or the server's error as a :class:`PodiumError`."""
        if not self._has_key:
            raise ConfigurationError("no Podium API keys: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY "
                                     "(`make up` prints them)")
        n = self.retries if retries is None else retries
        attempt = 0
        url = self.base_url + "/api/v1" + path
        while True:
            try:
                r = self._http.request(method, url, auth=self._auth, headers=self._headers,
                                       timeout=kw.pop("timeout", self._timeout), **kw)
            except httpx.TransportError as e:
                if attempt >= n:
                    raise ServiceUnavailable(f"cannot reach the Podium server at {self.base_url}: {e}. "
                                             "Is `podium up` running there (PODIUM_BASE_URL)?") from e
            else:
                if r.status_code < 400:
                    return r.json() if r.content else None
                if r.status_code not in (429, 500, 502, 503, 504) or attempt >= n:
                    raise error_from_response(r)
            attempt += 1
            time.sleep(min(4.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))

    # --- datasets ----------------------------------------------------------------------------
    @staticmethod
    def _ds(name: str, *rest: str) -> str:
        return "/".join(["/datasets", quote(name, safe=""), *(quote(r, safe="") for r in rest)])

    def list_datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.request("GET", "/datasets", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
            out.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def _obj(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """:meth:`request` for the endpoints that answer one JSON object."""
        out: dict[str, Any] = self.request(method, path, **kw)
        return out

    def _list(self, method: str, path: str, **kw: Any) -> list[Any]:
        """:meth:`request` for the endpoints that answer ``{"data": [...]}`` in one page."""
        out: list[Any] = self.request(method, path, **kw)["data"]
        return out

    def get_dataset_info(self, name: str) -> dict[str, Any]:
        return self._obj("GET", self._ds(name))

    def dataset_versions(self, name: str) -> list[dict[str, Any]]:
        return self._list("GET", self._ds(name, "versions"))

    def create_dataset(self, name: str, items: Any = (), *, description: str | None = None,
                       metadata: Mapping[str, Any] | None = None, message: str | None = None) -> dict[str, Any]:
        """Create a dataset; its version 1 holds ``items`` (a list, a file path or a Dataset)."""
        rows = [i.to_dict() for i in _items(items)]
        first, rest = rows[:_UPLOAD_CHUNK], rows[_UPLOAD_CHUNK:]
        info = self._obj("POST", "/datasets", json={"name": name, "description": description,
                                                    "metadata": dict(metadata or {}), "items": first,
                                                    "message": message}, retries=0)
        if rest:
            self.add_items(name, rest, message=message)
            info = self.get_dataset_info(name)
        return info

    def add_items(self, name: str, items: Any, *, message: str | None = None, replace: bool = False,
                  create: bool = False) -> dict[str, Any]:
        """Add or update items (by id): one new version when anything changed. ``replace``: the
        version holds exactly these items. ``create``: make the dataset when it does not exist."""
        rows = [i.to_dict() for i in _items(items)]
        return self._obj("POST", self._ds(name, "items"),
                         json={"items": rows, "message": message, "replace": replace, "create": create},
                         timeout=max(self._timeout, 60.0 + len(rows) / 100))

    def delete_items(self, name: str, ids: Sequence[str], *, message: str | None = None) -> dict[str, Any]:
        return self._obj("POST", self._ds(name, "items", "delete"),
                         json={"ids": list(ids), "message": message})

    def dataset_from_traces(self, name: str, *, filter: Mapping[str, Any] | None = None, limit: int = 1000,
                            expected: str | None = "output", split: str | None = None, create: bool = True,
                            message: str | None = None) -> dict[str, Any]:
        """Add production traces matching ``filter`` (the trace list's query filters) as items:
        input from the trace's input, expected from its output (``expected=None``: none)."""
        return self._obj("POST", self._ds(name, "from-traces"), json={
            "filter": dict(filter or {}), "limit": limit, "expected": expected, "split": split, "create": create,
            "message": message})

    def dataset_items(self, name: str, *, version: int | None = None,
                      split: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """``(version, items)``: every item of a version (the latest by default)."""
        out: list[dict[str, Any]] = []
        cursor = None
        resolved = version
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if resolved is not None:
                params["version"] = resolved
            if split is not None:
                params["split"] = split
            if cursor:
                params["cursor"] = cursor
            page = self.request("GET", self._ds(name, "items"), params=params)
            resolved = page["version"]
            out.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return int(resolved), out

    def get_dataset(self, name: str, *, version: int | None = None, split: str | None = None) -> Dataset:
        info = self.get_dataset_info(name)
        v, rows = self.dataset_items(name, version=version, split=split)
        return Dataset(items=tuple(DatasetItem.from_dict(r) for r in rows), name=name, version=v,
                       description=info.get("description"))

    # --- experiments -------------------------------------------------------------------------
    def create_experiment(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in spec.items() if v is not None}
        return self._obj("POST", "/experiments", json=body)

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return self._obj("GET", f"/experiments/{quote(experiment_id, safe='')}")

    def find_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        try:
            return self.get_experiment(experiment_id)
        except NotFound:
            return None

    def list_experiments(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._list("GET", "/experiments", params=params)

    def update_experiment(self, experiment_id: str, **fields: Any) -> dict[str, Any]:
        return self._obj("PATCH", f"/experiments/{quote(experiment_id, safe='')}",
                         json={k: v for k, v in fields.items() if v is not None})

    def add_experiment_items(self, experiment_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._obj("POST", f"/experiments/{quote(experiment_id, safe='')}/items",
                         json={"items": list(items)})

    def experiment_items(self, experiment_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = self.request("GET", f"/experiments/{quote(experiment_id, safe='')}/items", params=params)
            out.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def experiment_done_keys(self, experiment_id: str, *, retry: Sequence[str] = ()) -> list[list[Any]]:
        params = {"retry": ",".join(retry)} if retry else {}
        return self._list("GET", f"/experiments/{quote(experiment_id, safe='')}/done", params=params)

    def finish_experiment(self, experiment_id: str, *, status: str = "completed") -> dict[str, Any]:
        return self._obj("POST", f"/experiments/{quote(experiment_id, safe='')}/finish",
                         json={"status": status}, timeout=120)

    def compare(self, baseline: str, *candidates: str, confidence: float = 0.95, tolerance: float = 0.0,
                metrics: Sequence[str] | None = None) -> dict[str, Any]:
        """Per-metric deltas with paired-bootstrap CIs and per-item diffs of each candidate
        against ``baseline``."""
        params: list[tuple[str, Any]] = [("baseline", baseline), *(("candidate", c) for c in candidates),
                                         ("confidence", confidence), ("tolerance", tolerance)]
        if metrics:
            params.append(("metrics", ",".join(metrics)))
        return self._obj("GET", "/experiments/compare", params=params, timeout=120)

    def baseline(self, label: str, *, name: str | None = None) -> dict[str, Any] | None:
        """The newest completed experiment carrying ``label`` (named ``name``), or None."""
        rows = self.list_experiments(label=label, name=name, status="completed", limit=1)
        return rows[0] if rows else None


# --- module-level helpers (the default client) ----------------------------------------------------


def _client() -> EvalClient:
    from podium.sdk.client import get_client

    return get_client().evals


def create_dataset(name: str, items: Any = (), *, description: str | None = None,
                   metadata: Mapping[str, Any] | None = None, message: str | None = None,
                   replace: bool = False) -> Dataset:
    """Create dataset ``name`` from ``items`` (a list of ``{"input", "expected", ...}``, a
    ``.jsonl``/``.csv``/``.json`` path, or a Dataset); when it exists, add or update the items
    as its next version (``replace=True``: the version holds exactly these items). Returns the
    resulting version as a :class:`Dataset`."""
    c = _client()
    try:
        c.get_dataset_info(name)
    except NotFound:
        c.create_dataset(name, items, description=description, metadata=metadata, message=message)
    else:
        c.add_items(name, items, message=message, replace=replace)
    return c.get_dataset(name)


def get_dataset(name: str, *, version: int | None = None, split: str | None = None) -> Dataset:
    """A dataset version's items (the latest version by default)."""
    return _client().get_dataset(name, version=version, split=split)


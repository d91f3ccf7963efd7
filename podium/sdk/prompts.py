"""Prompts from the registry, cached in the process: ``podium.get_prompt("qa")``.

Cache rules (per process, shared by threads):

- **Labels** (``label="production"``, the default) are fresh for ``cache_ttl_seconds``
  (60 s). After that the cached prompt is still returned at once and a background thread
  fetches the label again (stale-while-revalidate); if that fails the stale prompt keeps
  being served (a new attempt at most every 5 s).
- **Versions** (``version=3``) never change, so they are cached for good (an LRU keeps
  at most ``max_entries`` entries). Fetching a label also caches its versions.
- ``cache_ttl_seconds=0`` bypasses the cache: every call asks the server.
- **Cold start**: with nothing cached, the call waits for the server (``max_retries``
  retries on network errors, 429 and 5xx). If it fails and ``fallback=`` was given, a
  :class:`Prompt` built from the fallback is returned with ``is_fallback=True`` and
  ``fallback_reason``, and a WARNING is logged; for 5 s further calls return the fallback
  without waiting for the server again. Without a fallback the error is raised.
- **A/B**: a label split between versions is fetched once with every target; each call
  picks a version by hashing ``user_id`` (else ``session_id``, else the ones set with
  ``podium.propagate_attributes``), so one user always gets the same version; with no id
  the pick is random. The chosen version is ``prompt.version`` (and what gets linked).
- **Bound to a collection**: a version whose config has ``retrieval: {collection, top_k?, mode?,
  filters?, query_variable?}`` comes back as a :class:`BoundPrompt`; its ``compile`` (and
  ``openai_kwargs``) fills ``{{context}}`` by searching the collection on the server with the
  ``question`` variable (``query_variable``), traced as a ``retrieval`` span (in the current
  trace when there is one) and formatted by the server (the search reply's ``context``), unless
  ``context=`` is passed. Searches are never cached.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from podium.core.prompts import (
    Prompt,
    Target,
    check_label,
    choose_version,
    parse_prompt_uri,
)
from podium.errors import (
    ConfigurationError,
    NotFound,
    PodiumError,
    ServiceUnavailable,
    ValidationFailed,
)
from podium.sdk.client import get_client
from podium.sdk.context import CURRENT_ATTRIBUTES
from podium.sdk.responses import error_from_response

__all__ = ["DEFAULT_TTL", "BoundPrompt", "PromptClient", "create_prompt", "get_prompt"]

logger = logging.getLogger(__name__)

#: Seconds a label lookup stays fresh (``cache_ttl_seconds`` default).
DEFAULT_TTL = 60.0
#: After a failed fetch, wait this long before asking the server again (background or cold).
RETRY_INTERVAL = 5.0


@dataclass(frozen=True, eq=False)
class BoundPrompt(Prompt):
    """A prompt version whose ``config.retrieval`` binds ``{{context}}`` to a knowledge collection
    (docs/rag.md). ``compile(question=...)`` and ``openai_kwargs(question=...)`` search the
    collection through the server (the client the prompt was fetched with) and fill ``context`` with
    the numbered passages the server's answers use; pass ``context=`` to skip the search.
    :meth:`retrieve` returns the whole search reply (hits with ids and scores, ``context``,
    ``trace_id``) to show citations."""

    #: The :class:`podium.sdk.collections.CollectionClient` searches go through (the fetching client's).
    collections: Any = field(default=None, repr=False, compare=False)

    @property
    def retrieval(self) -> dict[str, Any]:
        """The version's ``config.retrieval`` block."""
        r = self.config.get("retrieval")
        if not isinstance(r, Mapping) or not isinstance(r.get("collection"), str):
            raise ValidationFailed(f'{self._what()}: config.retrieval must be {{"collection": NAME, "top_k"?, '
                                   '"mode"?, "filters"?, "query_variable"?}',
                                   details=[{"field": "config.retrieval", "message": "invalid"}])
        return dict(r)

    @property
    def query_variable(self) -> str:
        """The variable searched for (``config.retrieval.query_variable``, default ``question``)."""
        return str(self.retrieval.get("query_variable") or "question")

    def retrieve(self, query: str | None = None, **variables: Any) -> dict[str, Any]:
        """Search the bound collection for ``query`` (default: the query variable's value): the
        server's search reply, ``{"data": [hits], "context": "[1] (title)\n...", "trace_id", ...}``."""
        r = self.retrieval
        q = query if query is not None else variables.get(self.query_variable)
        if q is None or not str(q).strip():
            raise ValidationFailed(f"{self._what()} retrieves its context with the {self.query_variable!r} "
                                   f"variable: pass {self.query_variable}=... (or context=... to skip the search)",
                                   details=[{"field": self.query_variable, "message": "required"}])
        client = self.collections
        if client is None:
            client = get_client().collections
        out: dict[str, Any] = client.search(r["collection"], str(q), mode=str(r.get("mode") or "hybrid"),
                                            top_k=int(r.get("top_k") or 4), filters=r.get("filters") or None)
        return out

    def compile(self, **variables: Any) -> Any:
        """As :meth:`Prompt.compile`; ``context`` (when the template uses it and it is not given)
        is filled from the bound collection, searched with the query variable."""
        if ("context" in self.variables and "context" not in variables
                and variables.get(self.query_variable) is not None):
            variables["context"] = self.retrieve(**variables)["context"]
        return super().compile(**variables)


@dataclass(slots=True)
class _Label:
    """A label as cached: its targets and the prompt of each target version."""

    label: str
    targets: list[Target]
    prompts: dict[int, Prompt]


@dataclass(slots=True)
class _Entry:
    value: Prompt | _Label
    fetched_at: float
    retry_at: float = 0.0  # no background refresh before this (after a failure)


@dataclass(slots=True)
class _Failure:
    reason: str
    until: float


class PromptClient:
    """Fetches, caches and creates prompts. Reached as ``podium.get_client().prompts``;
    ``podium.get_prompt(...)`` and ``podium.create_prompt(...)`` use the default client's."""

    def __init__(
        self,
        *,
        base_url: str,
        public_key: str | None,
        secret_key: str | None,
        timeout: float = 10.0,
        http_client: httpx.Client | None = None,
        default_ttl: float = DEFAULT_TTL,
        max_entries: int = 1000,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = httpx.BasicAuth(public_key, secret_key) if public_key and secret_key else None
        self._timeout = timeout
        self._own_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self.default_ttl = default_ttl
        self.max_entries = max_entries
        self.retry_interval = retry_interval
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._failures: dict[tuple[str, str], _Failure] = {}
        self._lock = threading.Lock()
        self._refreshing: set[tuple[str, str]] = set()
        self.fetches = 0  # requests made to the server (tests and debugging)
        self._collections: Any = None  # CollectionClient for bound prompts (created on first use)
        self._public_key, self._secret_key = public_key, secret_key
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(ref()))

    def _after_fork(self) -> None:
        """In a forked child: fresh lock, no refresh in flight, a fresh HTTP pool (the cache stays)."""
        self._lock = threading.Lock()
        self._refreshing = set()
        if self._own_http:
            self._http = httpx.Client(timeout=self._timeout)
            self._collections = None  # it shared the old pool

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # --- reading ----------------------------------------------------------------------------
    def get(
        self,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        type: str | None = None,
        cache_ttl_seconds: float | None = None,
        fallback: str | Sequence[Mapping[str, Any]] | Prompt | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        max_retries: int = 2,
        fetch_timeout_seconds: float | None = None,
    ) -> Prompt:
        """A prompt version: by ``version``, or by ``label`` (default ``production``); exactly
        one of them. ``name`` may be a URI: ``prompts:/qa@staging``, ``prompts:/qa/3``."""
        if name.startswith("prompts:/"):
            uri_name, uri_version, uri_label = parse_prompt_uri(name)
            if (uri_version is not None or uri_label is not None) and (version is not None or label is not None):
                raise ValueError(f"{name!r} already names a version or label; do not pass version= or label= too")
            name, version, label = uri_name, uri_version if uri_version is not None else version, uri_label or label
        if version is not None and label is not None:
            raise ValueError("pass version or label, not both (with neither, the 'production' label is used)")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise ValueError(f"version must be a positive int, got {version!r}")
        if version is None:
            label = check_label(label or "production", allow_latest=True)
        ttl = self.default_ttl if cache_ttl_seconds is None else float(cache_ttl_seconds)
        key = (name, str(version)) if version is not None else (name, "@" + str(label))
        seed = user_id or session_id
        if seed is None and version is None:
            attrs = CURRENT_ATTRIBUTES.get()
            if attrs is not None:
                seed = attrs.user_id or attrs.session_id

        if ttl > 0:
            entry = self._cache.get(key)
            if entry is not None:
                now = time.monotonic()
                if version is None and now - entry.fetched_at >= ttl and now >= entry.retry_at:
                    self._refresh_in_background(key, name, label)  # type: ignore[arg-type]  # label is set when version is None
                with self._lock:
                    if key in self._cache:
                        self._cache.move_to_end(key)
                return self._pick(entry.value, name, seed, type)
            failure = self._failures.get(key)
            if failure is not None and fallback is not None and time.monotonic() < failure.until:
                return self._fallback(name, label, fallback, type, failure.reason, warn=False)
        try:
            value = self._fetch(name, version, label, retries=max_retries,
                                timeout=fetch_timeout_seconds or self._timeout)
        except (httpx.HTTPError, PodiumError) as e:
            reason = _reason(e)
            if fallback is None:
                if isinstance(e, PodiumError):
                    raise
                raise ServiceUnavailable(
                    f"cannot fetch prompt {name!r} from {self.base_url}: {reason}; is the server up? "
                    "Pass fallback=... to keep working while it is not"
                ) from e
            if ttl > 0:
                with self._lock:
                    self._failures[key] = _Failure(reason, time.monotonic() + min(ttl, self.retry_interval))
            return self._fallback(name, label, fallback, type, reason, warn=True)
        if ttl > 0:
            self._store(key, value)
        return self._pick(value, name, seed, type)

    def _pick(self, value: Prompt | _Label, name: str, seed: str | None, type: str | None) -> Prompt:
        if isinstance(value, _Label):
            v = choose_version(value.targets, name=name, label=value.label, seed=seed)
            p = value.prompts[v]
        else:
            p = value
        if type is not None and p.type != type:
            raise ValidationFailed(f"prompt {name!r} is a {p.type} prompt, not {type}; fetch it with type={p.type!r}")
        return p

    def _store(self, key: tuple[str, str], value: Prompt | _Label) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures.pop(key, None)
            self._cache[key] = _Entry(value, now)
            self._cache.move_to_end(key)
            if isinstance(value, _Label):
                for v, p in value.prompts.items():  # versions never change: cache them too
                    vk = (key[0], str(v))
                    if vk not in self._cache:
                        self._cache[vk] = _Entry(dataclasses.replace(p, label=None), now)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _refresh_in_background(self, key: tuple[str, str], name: str, label: str) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def work() -> None:
            try:
                value = self._fetch(name, None, label, retries=1, timeout=self._timeout)
            except Exception as e:
                logger.warning("Podium: could not refresh prompt %r (label %s): %s; serving the cached version",
                               name, label, _reason(e))
                with self._lock:
                    entry = self._cache.get(key)
                    if entry is not None:
                        entry.retry_at = time.monotonic() + self.retry_interval
            else:
                self._store(key, value)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        threading.Thread(target=work, name="podium-prompt-refresh", daemon=True).start()

    def _fallback(self, name: str, label: str | None, fallback: Any, type: str | None, reason: str, *,
                  warn: bool) -> Prompt:
        if warn:
            logger.warning("Podium: prompt %r (%s) could not be fetched (%s); using the fallback", name,
                           f"label {label}" if label else "version", reason)
        if isinstance(fallback, Prompt):
            return dataclasses.replace(fallback, is_fallback=True, fallback_reason=reason, label=label)
        kind = type or ("chat" if isinstance(fallback, list | tuple) else "text")
        template = [dict(m) for m in fallback] if isinstance(fallback, list | tuple) else fallback
        return Prompt(name=name, prompt=template, type=kind,  # type: ignore[arg-type]  # Prompt() checks the type
                      version=None, label=label, is_fallback=True, fallback_reason=reason)

    # --- HTTP ----------------------------------------------------------------------------------
    def _url(self, name: str, *rest: str) -> str:
        return "/".join([self.base_url + "/api/v1/prompts", quote(name, safe="/"), *(quote(r, safe="") for r in rest)])

    def _request(self, method: str, url: str, *, retries: int = 0, timeout: float | None = None,
                 **kw: Any) -> Any:
        if self._auth is None:
            raise ConfigurationError(
                "no Podium API keys: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (or pass them to podium.configure)"
            )
        attempt = 0
        while True:
            self.fetches += 1
            try:
                r = self._http.request(method, url, auth=self._auth, timeout=timeout or self._timeout, **kw)
            except httpx.TransportError:
                if attempt >= retries:
                    raise
            else:
                if r.status_code < 400:
                    return r.json() if r.content else None
                if r.status_code not in (429, 500, 502, 503, 504) or attempt >= retries:
                    raise error_from_response(r)
            attempt += 1
            time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))

    @property
    def collections(self) -> Any:
        """The :class:`podium.sdk.collections.CollectionClient` bound prompts search through (same
        server, keys and HTTP pool as this client)."""
        if self._collections is None:
            from podium.sdk.collections import CollectionClient
            from podium.sdk.evals import EvalClient

            self._collections = CollectionClient(EvalClient(
                base_url=self.base_url, public_key=self._public_key, secret_key=self._secret_key,
                timeout=max(self._timeout, 30.0), http_client=self._http))
        return self._collections

    def _prompt(self, d: Mapping[str, Any], *, label: str | None = None) -> Prompt:
        """A version from the wire: a :class:`BoundPrompt` when its config binds a collection."""
        if isinstance((d.get("config") or {}).get("retrieval"), Mapping):
            p = BoundPrompt.from_dict(d, label=label)
            object.__setattr__(p, "collections", self.collections)
            return p
        return Prompt.from_dict(d, label=label)

    def _fetch(self, name: str, version: int | None, label: str | None, *, retries: int,
               timeout: float) -> Prompt | _Label:
        if version is not None:
            return self._prompt(self._request("GET", self._url(name, "versions", str(version)), retries=retries,
                                              timeout=timeout))
        assert label is not None
        data = self._request("GET", self._url(name, "labels", label), retries=retries, timeout=timeout)
        prompts = {v["version"]: self._prompt(v, label=label) for v in data["versions"]}
        targets = [Target(int(x["version"]), float(x["weight"])) for x in data["targets"]
                   if int(x["version"]) in prompts]
        if not targets:
            raise NotFound(f"label {label!r} of prompt {name!r} points at no version")
        return _Label(label, targets, prompts)

    # --- writing ---------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        type: str | None = None,
        config: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        labels: Sequence[str] = (),
        commit_message: str | None = None,
        template_format: str = "mustache",
        base_version: int | None = None,
    ) -> Prompt:
        """Create a prompt, or the next version of an existing one; ``labels`` move to it.
        Invalid templates raise ValidationFailed (line and column in the message)."""
        body: dict[str, Any] = {
            "name": name,
            "prompt": prompt if isinstance(prompt, str) else [dict(m) for m in prompt],
            "template_format": template_format,
            "labels": list(labels),
        }
        if type is not None:
            body["type"] = type
        if config is not None:
            body["config"] = dict(config)
        if tags is not None:
            body["tags"] = list(tags)
        if commit_message is not None:
            body["commit_message"] = commit_message
        if base_version is not None:
            body["base_version"] = base_version
        data = self._request("POST", self.base_url + "/api/v1/prompts", json=body)
        self.invalidate(name)
        return self._prompt(data)

    def set_label(self, name: str, label: str, version: int | None = None, *,
                  versions: Mapping[int, float] | None = None, comment: str | None = None) -> dict[str, Any]:
        """Point ``label`` at ``version``, or split it: ``versions={3: 90, 4: 10}``."""
        if (version is None) == (versions is None):
            raise ValueError("pass version=N, or versions={N: weight, ...} for an A/B split")
        body: dict[str, Any] = {"version": version} if version is not None else {
            "versions": [{"version": v, "weight": w} for v, w in (versions or {}).items()]}
        if comment is not None:
            body["comment"] = comment
        data: dict[str, Any] = self._request("PUT", self._url(name, "labels", label), json=body)
        self.invalidate(name)
        return data

    def rollback(self, name: str, label: str = "production", *, comment: str | None = None) -> dict[str, Any]:
        """Move ``label`` back to where it pointed before its last move."""
        data: dict[str, Any] = self._request("POST", self._url(name, "labels", label, "rollback"),
                                             json={"comment": comment} if comment else None)
        self.invalidate(name)
        return data

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached labels (of ``name``, or all); cached versions stay (they never change)."""
        with self._lock:
            for k in [k for k in self._cache if (name is None or k[0] == name) and k[1].startswith("@")]:
                del self._cache[k]
            for k in [k for k in self._failures if name is None or k[0] == name]:
                del self._failures[k]


def _after_fork(client: PromptClient | None) -> None:
    if client is not None:
        client._after_fork()



def _reason(e: BaseException) -> str:
    if isinstance(e, PodiumError):
        return f"{e.code}: {e.message}"
    return f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__


# --- module-level API (the default client) ------------------------------------------------------


def get_prompt(
    name: str,
    *,
    version: int | None = None,
    label: str | None = None,
    type: str | None = None,
    cache_ttl_seconds: float | None = None,
    fallback: str | Sequence[Mapping[str, Any]] | Prompt | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    max_retries: int = 2,
    fetch_timeout_seconds: float | None = None,
) -> Prompt:
    """A prompt from the registry (cached; see :mod:`podium.sdk.prompts`)::

        prompt = podium.get_prompt("qa")                      # label "production"
        prompt = podium.get_prompt("qa", version=3)           # or "prompts:/qa/3"
        prompt = podium.get_prompt("qa", label="staging")     # or "prompts:/qa@staging"
        text = prompt.compile(question="...")                 # MissingVariablesError names what is missing
        client.chat.completions.create(**prompt.openai_kwargs(question="..."))
    """
    return get_client().prompts.get(
        name, version=version, label=label, type=type, cache_ttl_seconds=cache_ttl_seconds, fallback=fallback,
        user_id=user_id, session_id=session_id, max_retries=max_retries, fetch_timeout_seconds=fetch_timeout_seconds,
    )


def create_prompt(
    name: str,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    type: str | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    labels: Sequence[str] = (),
    commit_message: str | None = None,
    template_format: str = "mustache",
) -> Prompt:
    """Create a prompt or its next version (see :meth:`PromptClient.create`)."""
    return get_client().prompts.create(name, prompt, type=type, config=config, tags=tags, labels=labels,
                                       commit_message=commit_message, template_format=template_format)


"""The trainer's side of run tracking: :class:`RunTracker` records a fine-tuning run on a
running Podium server through ``/api/v1/training-runs`` (docs/training-runs.md).

``start`` and ``resume`` fail loudly (no run id, no training). After that the tracker never
raises into the training loop for a transient failure (server down, timeout, 5xx, 429): it warns
once, keeps the steps it could not send (counted in :attr:`RunTracker.unsent`) and sends them
with the next call; a 4xx that says the run is gone (404) is reported once and the steps are
dropped (:attr:`RunTracker.dropped`). It needs only httpx and the settings, so any layer that
is handed a tracker (the trainer's hooks, a sweep) can use it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import httpx

from podium.cli._common import server_client
from podium.config import Settings
from podium.errors import PodiumError, ServiceUnavailable
from podium.sdk.responses import error_from_response

__all__ = ["RunTracker", "tracking_client"]

logger = logging.getLogger("podium.tune.tracking")

API = "/api/v1/training-runs"
#: Steps kept while the server cannot be reached; older ones are dropped past this.
MAX_PENDING = 100_000
#: Per-request limits: a slow or hung server must not stall training for long.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def tracking_client(settings: Settings | None = None) -> httpx.Client:
    """A client for the server with the project key from the environment or the default keys file
    (``ConfigurationError`` without one), with short timeouts: a hung server must not stall training."""
    return server_client(settings, timeout=TIMEOUT)


def _clean(v: Any) -> Any:
    """JSON has no NaN or infinity (a diverged loss): send null instead."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _transient(r: httpx.Response) -> bool:
    return r.status_code >= 500 or r.status_code in (408, 429)


class RunTracker:
    """One tracked run. ``run`` is the server's record as last seen (``run_id`` its id)."""

    def __init__(self, client: httpx.Client, run: dict[str, Any], *, owns_client: bool = True) -> None:
        self._client = client
        self._owns = owns_client
        self.run: dict[str, Any] = run
        self.run_id: str = str(run["id"])
        self.cancel_requested = bool(run.get("cancel_requested"))
        self.pending: list[dict[str, Any]] = []
        self.sent = 0  # steps the server stored
        self.dropped = 0  # steps given up on (run gone, refused by the server, or past MAX_PENDING)
        self.rejected: list[dict[str, Any]] = []  # steps the server refused, with its reasons
        self.failures = 0  # calls that failed (transient)
        self.gone = False  # the server says the run no longer exists
        self._warned = False

    # --- start ----------------------------------------------------------------------------------
    @staticmethod
    def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """A call whose failure is the caller's to handle: PodiumError (server's) or ServiceUnavailable."""
        try:
            r = client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ServiceUnavailable(f"cannot reach the Podium server at {client.base_url} to track the run "
                                     f"({e.__class__.__name__}: {e}); start it with `podium up` or point "
                                     "PODIUM_BASE_URL at it") from e
        if r.status_code >= 400:
            raise error_from_response(r)
        data: dict[str, Any] = r.json()
        return data

    @classmethod
    def start(cls, method: str, base_model: str, params: dict[str, Any], *, name: str | None = None,
              dataset: dict[str, Any] | None = None, data_path: str | None = None,
              hardware: dict[str, Any] | None = None, output_dir: str | None = None, sweep_id: str | None = None,
              trial: int | None = None, tags: list[str] | None = None, client: httpx.Client | None = None,
              settings: Settings | None = None) -> RunTracker:
        """Create the run (status ``running``); raises a :class:`PodiumError` when it cannot."""
        c = client or tracking_client(settings)
        body = {"method": method, "base_model": base_model, "params": _clean(params), "name": name,
                "dataset": dataset, "data_path": data_path, "hardware": _clean(hardware or {}),
                "output_dir": output_dir, "sweep_id": sweep_id, "trial": trial, "tags": list(tags or [])}
        try:
            run = cls._call(c, "POST", API, json={k: v for k, v in body.items() if v is not None})
        except PodiumError:
            if client is None:
                c.close()
            raise
        return cls(c, run, owns_client=client is None)

    @classmethod
    def resume(cls, run_id: str, *, client: httpx.Client | None = None,
               settings: Settings | None = None) -> RunTracker:
        """Mark a cancelled or failed run ``running`` again (``.run`` has its ``output_dir`` and
        ``last_step``); raises a :class:`PodiumError` when it cannot (409: it is finished)."""
        c = client or tracking_client(settings)
        try:
            run = cls._call(c, "PATCH", f"{API}/{run_id}", json={"status": "running"})
        except PodiumError:
            if client is None:
                c.close()
            raise
        return cls(c, run, owns_client=client is None)

    # --- during the run -------------------------------------------------------------------------
    @property
    def unsent(self) -> int:
        """Steps not yet stored (kept, sent with the next call)."""
        return len(self.pending)

    def _warn(self, what: str) -> None:
        self.failures += 1
        if not self._warned:
            self._warned = True
            logger.warning("run %s: %s; training goes on, steps are kept and sent when the server answers "
                           "(this warning is shown once)", self.run_id, what)

    def _gone(self) -> None:
        if not self.gone:
            logger.error("run %s no longer exists on the server (deleted?); its steps are not recorded any more",
                         self.run_id)
        self.gone = True
        self.dropped += len(self.pending)
        self.pending.clear()

    def _try(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """One request; None on a transient failure (warned), the response otherwise."""
        try:
            r = self._client.request(method, path, json=body)
        except httpx.HTTPError as e:
            self._warn(f"cannot reach the server ({e.__class__.__name__})")
            return None
        if _transient(r):
            self._warn(f"the server answered {r.status_code}")
            return None
        if r.status_code == 404:
            self._gone()
            return None
        return r

    def log_steps(self, steps: list[dict[str, Any]]) -> bool:
        """Record steps (``{step, loss?, learning_rate?, epoch?, grad_norm?, eval_loss?, ...}``) with
        any kept from earlier failed calls. Returns whether a cancel was requested (from the UI,
        the API or ``podium tune runs cancel``). Never raises."""
        try:
            return self._log_steps(steps)
        except Exception as e:  # the training loop must go on whatever happens here
            self._warn(f"unexpected {e.__class__.__name__} while sending steps: {e}")
            return self.cancel_requested

    def _log_steps(self, steps: list[dict[str, Any]]) -> bool:
        if self.gone:
            self.dropped += len(steps)
            return self.cancel_requested
        self.pending.extend(_clean(dict(s)) for s in steps)
        if len(self.pending) > MAX_PENDING:
            over = len(self.pending) - MAX_PENDING
            del self.pending[:over]
            self.dropped += over
        while self.pending:
            batch = self.pending[:5000]
            r = self._try("POST", f"{API}/{self.run_id}/steps", {"steps": batch})
            if r is None:
                return self.cancel_requested
            if r.status_code >= 400:  # refused as a whole (a client bug): do not resend it forever
                self.dropped += len(batch)
                del self.pending[:len(batch)]
                logger.warning("run %s: the server refused %d steps (%s): %s", self.run_id, len(batch),
                               r.status_code, r.text[:300])
                continue
            data = r.json()
            del self.pending[:len(batch)]
            self.sent += int(data.get("accepted", 0))
            bad = list(data.get("rejected") or [])
            if bad:
                self.rejected.extend(bad)
                self.dropped += len(bad)
                logger.warning("run %s: %d steps refused: %s", self.run_id, len(bad), bad[0].get("message"))
            self.cancel_requested = bool(data.get("cancel_requested"))
        return self.cancel_requested

    def update(self, **fields: Any) -> None:
        """Change the run (hardware, output_dir, metrics, artifacts, name, tags); never raises."""
        try:
            r = self._try("PATCH", f"{API}/{self.run_id}", _clean(fields))
            if r is not None and r.status_code < 400:
                self.run = r.json()
            elif r is not None:
                logger.warning("run %s: update refused (%s): %s", self.run_id, r.status_code, r.text[:300])
        except Exception as e:
            self._warn(f"unexpected {e.__class__.__name__} while updating: {e}")

    # --- the end --------------------------------------------------------------------------------
    def finish(self, status: str, *, metrics: dict[str, Any] | None = None, artifacts: dict[str, Any] | None = None,
               error: str | None = None, duration_s: float | None = None, retries: int = 3) -> dict[str, Any]:
        """End the run (``completed``, ``failed``, ``cancelled`` or ``pruned``) after sending the
        steps still kept; retried a few times. Returns the run as the server has it, or (server
        unreachable) as it would be, with ``"tracked": False``. Never raises for a transient failure."""
        body: dict[str, Any] = {"status": status, "metrics": _clean(metrics) if metrics else None,
                                "artifacts": _clean(artifacts) if artifacts else None, "error": error,
                                "duration_s": duration_s}
        body = {k: v for k, v in body.items() if v is not None}
        for attempt in range(max(1, retries)):
            if self.pending:
                self.log_steps([])
            if self.gone:
                break
            try:
                r = self._try("PATCH", f"{API}/{self.run_id}", body)
            except Exception as e:
                self._warn(f"unexpected {e.__class__.__name__} while finishing: {e}")
                r = None
            if r is not None and r.status_code < 400:
                self.run = r.json()
                return self.run
            if r is not None:  # refused (a 409: already finished, or a bad field): say so
                logger.warning("run %s: the server refused to mark it %s (%s): %s", self.run_id, status,
                               r.status_code, r.text[:300])
                if r.status_code == 400 and ("metrics" in body or "artifacts" in body):
                    # a bad metric must not leave the run "running" forever: record the end without them
                    body = {k: v for k, v in body.items() if k not in ("metrics", "artifacts")}
                    continue
                break
            if attempt + 1 < retries:
                time.sleep(min(2.0, 0.25 * 2 ** attempt))
        return {**self.run, **{k: v for k, v in body.items() if k != "metrics" and k != "artifacts"},
                "metrics": {**self.run.get("metrics", {}), **(metrics or {})},
                "artifacts": {**self.run.get("artifacts", {}), **(artifacts or {})}, "tracked": False}

    def close(self) -> None:
        if self._owns:
            self._client.close()

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Eval sweeps started from the UI (``/eval-sweeps/new``): the server runs the same command a user
would, ``podium eval sweep SUITE.yaml --space SPACE.yaml``, as a child process of its own.

Why a child process: the sweep engine (``podium.experiments``) is a client of the server and sits
beside it (import-linter keeps the server from importing it), its trials call the gateway over
HTTP like any caller, and a sweep can take minutes: a child keeps that work off the server's
event loop and threads, and what it does is exactly what ``podium eval sweep`` does.

The data flow, for one sweep:

1. the suite and the space are written to a new folder ``$PODIUM_HOME/eval-sweeps/ui-<hex>/`` (``suite.yaml``,
   ``space.yaml``; the child's output goes to ``sweep.log`` there);
2. the sweep is created in the store first (status ``running``, ``created_by`` whoever started it),
   so its page exists at once; the child records into it (``--record-into``): each trial as it ends,
   then the status, spend and summary;
3. the child authenticates with a **key of its own**: a new project key of role ``member`` whose
   limits (budgets, rate limits) and model allow-list are copied from the key of whoever started
   the sweep, so the gateway's budgets apply to the sweep as to that caller; its note names the
   sweep and who started it, and it is **revoked when the child exits**, whatever the exit (the key
   list keeps it, with its creation and revocation times);
4. a watcher thread waits for the child, revokes the key, and when the sweep is still ``running``
   (the child stopped before recording its end: a suite that cannot run, a crash, a kill) marks it
   ``failed`` with the last lines of its log as ``summary.reason``.

At most :data:`MAX_RUNNING` sweeps run per server process at once; children still running when the
server process exits are terminated (their keys are revoked by the watcher first where it can).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podium.errors import PodiumError, TooManyRequests
from podium.server.state import AppState

__all__ = ["MAX_RUNNING", "Launch", "launch_sweep", "running"]

MAX_RUNNING = 2
LOG_TAIL = 2000

_lock = threading.Lock()
_children: dict[str, subprocess.Popen[bytes]] = {}
_atexit_registered = False


@dataclass(frozen=True)
class Launch:
    """What :func:`launch_sweep` started: the sweep's id, its folder and the child's key."""

    sweep_id: str
    folder: Path
    public_key: str


def running() -> list[str]:
    """The ids of the sweeps this server process is running now."""
    with _lock:
        return [k for k, p in _children.items() if p.poll() is None]


def _terminate_all() -> None:
    with _lock:
        children = list(_children.values())
    for p in children:
        if p.poll() is None:
            p.terminate()


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-8:])[-LOG_TAIL:]


def launch_sweep(st: AppState, project_id: str, *, name: str, suite: dict[str, Any], space: dict[str, Any],
                 base_url: str, actor: str, caller: Any = None, description: str | None = None) -> Launch:
    """Start a sweep of ``suite`` (the suite YAML's mapping) over ``space`` (the space YAML's mapping)
    against the server at ``base_url`` (this server, as its clients reach it). ``caller`` is the
    :class:`~podium.store.repos.projects.ApiKey` of whoever started it (its limits and models are
    copied to the sweep's key; None in local mode). Raises :class:`TooManyRequests` when
    :data:`MAX_RUNNING` sweeps run already."""
    global _atexit_registered
    if len(running()) >= MAX_RUNNING:
        raise TooManyRequests(f"{MAX_RUNNING} sweeps are running on this server already: wait for one to end (their "
                          "pages show the trials as they come) or run this one with `podium eval sweep`")
    raw_search = space.get("search")
    search: dict[str, Any] = raw_search if isinstance(raw_search, dict) else {}
    budget = space.get("budget_usd")
    folder = st.settings.home_dir / "eval-sweeps" / f"ui-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    suite_file, space_file, log_file = folder / "suite.yaml", folder / "space.yaml", folder / "sweep.log"
    suite_file.write_text(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True), encoding="utf-8")
    space_file.write_text(yaml.safe_dump(space, sort_keys=False, allow_unicode=True), encoding="utf-8")
    # the suite's path is recorded so that `podium eval sweeps promote --label` can gate with it
    sweep = st.store.eval_sweeps.create(
        project_id, name=name, suite={"name": name, "description": description, "path": str(suite_file),
                                      "started_from": "ui"},
        space=space, objectives=["score", "cost_per_1k", "p95_ms"],
        search={"method": search.get("method", "grid"), "trials": search.get("trials"), "seed": search.get("seed", 0)},
        budget_usd=float(budget) if isinstance(budget, int | float) else None, actor=actor)
    sweep_id = str(sweep["id"])
    new = st.store.projects.create_key(
        project_id, role="member", note=f"eval sweep {sweep_id} started from the UI by {actor}; revoked when it ends",
        limits=getattr(caller, "limits", None), models=getattr(caller, "models", None))
    env = {**os.environ, "PODIUM_BASE_URL": base_url.rstrip("/"), "PODIUM_PUBLIC_KEY": new.key.public_key,
           "PODIUM_SECRET_KEY": new.secret_key, "NO_COLOR": "1", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "podium.cli", "eval", "sweep", str(suite_file), "--space", str(space_file),
           "--name", name, "--record-into", sweep_id]
    try:
        with log_file.open("wb") as log:
            child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=folder)
    except OSError as e:
        _end(st, project_id, sweep_id, new.key.public_key, f"could not start the sweep: {e}")
        raise
    with _lock:
        _children[sweep_id] = child
        if not _atexit_registered:
            atexit.register(_terminate_all)
            _atexit_registered = True
    threading.Thread(target=_watch, args=(st, project_id, sweep_id, new.key.public_key, child, log_file),
                     name=f"podium-sweep-{sweep_id}", daemon=True).start()
    return Launch(sweep_id, folder, new.key.public_key)


def _watch(st: AppState, project_id: str, sweep_id: str, public_key: str, child: subprocess.Popen[bytes],
           log_file: Path) -> None:
    code = child.wait()
    reason = None
    if code != 0:
        reason = f"the sweep process exited with {code}: {_tail(log_file) or 'no output'}"
    _end(st, project_id, sweep_id, public_key, reason)
    with _lock:
        _children.pop(sweep_id, None)


def _end(st: AppState, project_id: str, sweep_id: str, public_key: str, reason: str | None) -> None:
    """Revoke the sweep's key; mark the sweep failed when the child never recorded its end."""
    try:
        st.store.projects.revoke_key(project_id, public_key)
        st.auth.invalidate()
    except PodiumError:
        pass
    try:
        sweep = st.store.eval_sweeps.get(project_id, sweep_id)
    except PodiumError:
        return
    if sweep["status"] == "running":
        summary = {**sweep["summary"], "reason": reason or "the sweep process ended without recording its result"}
        st.store.eval_sweeps.update(project_id, sweep_id, {"status": "failed", "summary": summary})

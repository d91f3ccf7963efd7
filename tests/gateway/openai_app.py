"""A real Podium server in front of the fake upstream, for the OpenAI-surface tests.

``serve(store, project, upstream, home)`` starts ``create_app`` (uvicorn in a thread) with
a gateway config whose ``fake`` alias points at the fake upstream (model ``fake-a``); the
``openai_gateway`` fixture (tests/gateway/conftest.py) binds those arguments and stops what
it started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai

from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream

__all__ = ["client", "serve", "wait_span"]


def serve(store: Any, project: ProjectKeys, up: FakeUpstream, home: Path, *, cache: str = "off",
          mode: str = "all", **settings: Any) -> LiveServer:
    """``settings``: more ``Settings`` fields (``allowed_hosts="gw.example"``)."""
    from podium.config import Settings
    from podium.server.app import create_app

    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "gateway.yaml"
    cfg.write_text(f"""
router: {{retries: 0, timeout: 10}}
models:
  - name: fake
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{up.base_url}"}}
  - name: fake-embed
    mode: embedding
    deployments:
      - {{provider: openai, model: embed-1, api_base: "{up.base_url}"}}
""")
    app = create_app(Settings(gateway_config=cfg, gateway_cache=cache, **settings), store=store, mode=mode)  # type: ignore[arg-type]
    th = ServerThread(app).start()
    return LiveServer(th.url, store, project, app, th)


def client(srv: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.keys.secret_key, max_retries=0, timeout=30)


def wait_span(srv: LiveServer, trace_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The gateway's span of ``trace_id`` once the ingest queue has stored it."""
    with srv.client() as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and r.json()["spans"]:
                return r.json()["spans"][0]  # type: ignore[no-any-return]
            time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} was not stored within {timeout}s")

"""`podium gateway`, `podium models list|add|remove`, `podium limits show|set`, `podium chat`."""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

import httpx
import typer
from rich.table import Table

from podium.cli._common import (
    api_call,
    api_client,
    console,
    err_console,
    open_store,
    print_json,
    server_extra_missing,
)
from podium.config import Settings

__all__ = ["chat", "gateway", "limits_app", "models_app"]

#: SQLite page cache of each connection of `podium gateway`, in KiB. The engine's 64 MiB suits the UI's
#: queries; the gateway only appends its span log and reads a few cached rows, and each pooled connection
#: the writer takes in turn grows its own cache as the database grows (docs/gateway.md#overhead).
GATEWAY_SQLITE_CACHE_KIB = 2048
#: glibc malloc arenas for `podium gateway` (``M_ARENA_MAX``; unless MALLOC_ARENA_MAX is set).
GATEWAY_MALLOC_ARENAS = 2

models_app = typer.Typer(help="Model aliases the gateway serves.", no_args_is_help=True)
limits_app = typer.Typer(help="Gateway rate limits and budgets of the project or of a key.", no_args_is_help=True)


def gateway(
    host: str = typer.Option(None, help="Bind address (default 127.0.0.1, or PODIUM_HOST)."),
    port: int = typer.Option(None, help="Port (default 8700, or PODIUM_PORT)."),
    workers: int = typer.Option(1, help="uvicorn worker processes (share limits through PODIUM_REDIS_URL)."),
) -> None:
    """Serve only the OpenAI-compatible gateway (/v1/*, /metrics, health): stateless, for scaling out
    behind a load balancer with PostgreSQL (PODIUM_DATABASE_URL) and Redis (PODIUM_REDIS_URL)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        import uvicorn

        from podium._logging import setup_logging
        from podium.server.app import create_app
    except ImportError as e:
        raise server_extra_missing(e)
    setup_logging(settings.log_format)
    if workers > 1 and not settings.redis_url:
        err_console.print("[yellow]warning:[/] several workers without PODIUM_REDIS_URL each enforce the limits "
                          "alone (a limit of 60 rpm becomes 60 per worker)")
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold green]Podium gateway[/] on [bold]{url}/v1[/]  (metrics: {url}/metrics)")
    if workers > 1:
        uvicorn.run("podium.server.asgi:gateway_app", factory=True, host=settings.host, port=settings.port,
                    workers=workers, access_log=False, log_level="warning")
        return
    from podium.server.routes.gateway import outermost

    _fewer_malloc_arenas()  # before any thread starts
    store = open_store(settings)
    _small_page_cache(store)
    app = create_app(settings, store=store, mode="gateway", freeze_gc=True)
    # The hot endpoints are called before FastAPI's per-request telemetry check (docs/gateway.md#overhead).
    uvicorn.run(outermost(app), host=settings.host, port=settings.port, access_log=False, log_level="warning")


def _fewer_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at :data:`GATEWAY_MALLOC_ARENAS` (Linux/glibc only; a no-op elsewhere or
    when ``MALLOC_ARENA_MAX`` is set). Each thread that allocates (the ingest writer, the worker threads)
    otherwise gets an arena of its own whose freed memory stays in RSS: ~30 MiB of peak RSS under load."""
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(-8, GATEWAY_MALLOC_ARENAS)  # M_ARENA_MAX


def _small_page_cache(store: Any) -> None:
    """Give every SQLite connection of this process a :data:`GATEWAY_SQLITE_CACHE_KIB` page cache
    (a setting of the connection, applied after the engine's own pragmas)."""
    engine = store.engine
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import event

    def cache_size(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA cache_size=-{GATEWAY_SQLITE_CACHE_KIB}")
        cur.close()

    event.listen(engine, "connect", cache_size)
    engine.dispose()  # the connections opened so far (the migration check) are reopened with it


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Model aliases this project can call, with their deployments and fallbacks."""
    data = api_call("GET", "/api/v1/gateway/models")["data"]
    if as_json:
        print_json(data)
        return
    table = Table("model", "mode", "source", "deployments", "fallbacks")
    for a in data:
        deps = ", ".join(
            f"{d['provider']}/{d['model']}" + (f" (w={d['weight']:g})" if len(a["deployments"]) > 1 else "")
            for d in a["deployments"]
        )
        table.add_row(a["name"], a["mode"], a["source"], deps, ", ".join(a["fallbacks"]))
    console.print(table)


@models_app.command("add")
def models_add(
    name: str = typer.Argument(..., help="Alias callers use as `model`."),
    provider: str = typer.Option(..., help="openai (any OpenAI-compatible server), anthropic, gemini or local."),
    model: str = typer.Option(..., help="The upstream's model name."),
    api_base: str = typer.Option(None, help="Base URL, e.g. http://localhost:11434/v1 for Ollama."),
    api_key_env: str = typer.Option(None, help="The server's environment variable holding the provider key "
                                    "(the server must list it in PODIUM_GATEWAY_ENV_ALLOWLIST)."),
    api_key: str = typer.Option(None, help="A provider key to store encrypted (prefer --api-key-env)."),
    weight: float = typer.Option(1.0, help="Share of traffic among this alias's deployments."),
    fallback: list[str] = typer.Option([], help="Alias to try when this one fails (repeatable)."),
    append: bool = typer.Option(False, help="Add a deployment to an existing alias instead of replacing it."),
    mode: str = typer.Option("chat", help="chat or embedding."),
) -> None:
    """Declare (or replace) a model alias through the API."""
    dep: dict[str, Any] = {"provider": provider, "model": model, "weight": weight}
    if api_base:
        dep["api_base"] = api_base
    if api_key_env:
        dep["api_key"] = "env:" + api_key_env
    elif api_key:
        dep["api_key"] = api_key
    deployments = [dep]
    fallbacks = list(fallback)
    if append:
        current = {a["name"]: a for a in api_call("GET", "/api/v1/gateway/models")["data"]}
        if name in current and current[name]["source"] == "api":
            err_console.print("[yellow]note:[/] stored secrets of the existing deployments are kept only if "
                              "they came from env vars; re-add literal keys")
            for d in current[name]["deployments"]:
                old = {k: d[k] for k in ("provider", "model", "api_base", "weight") if d.get(k) is not None}
                if isinstance(d.get("api_key"), str) and d["api_key"].startswith("env:"):
                    old["api_key"] = d["api_key"]
                deployments.insert(0, old)
            fallbacks = fallbacks or current[name]["fallbacks"]
    body = {"mode": mode, "deployments": deployments, "fallbacks": fallbacks}
    out = api_call("PUT", f"/api/v1/gateway/models/{name}", json=body)
    console.print(f"model [bold]{out['name']}[/] -> " + ", ".join(
        f"{d['provider']}/{d['model']}" for d in out["deployments"]))


@models_app.command("remove")
def models_remove(name: str) -> None:
    """Remove an alias declared through the API (aliases from the config file stay)."""
    api_call("DELETE", f"/api/v1/gateway/models/{name}")
    console.print(f"removed [bold]{name}[/]")


@limits_app.command("show")
def limits_show() -> None:
    """Limits and live usage of the project and of every key."""
    print_json(api_call("GET", "/api/v1/gateway/spend"))


@limits_app.command("set")
def limits_set(
    key: str = typer.Option(None, "--key", help="Public key (pk-...) to limit; default: the whole project."),
    rpm: int = typer.Option(None, help="Requests per minute."),
    tpm: int = typer.Option(None, help="Tokens per minute."),
    max_parallel: int = typer.Option(None, help="Concurrent requests."),
    budget_daily: float = typer.Option(None, help="USD per UTC day."),
    budget_monthly: float = typer.Option(None, help="USD per UTC month."),
    budget_total: float = typer.Option(None, help="USD in total."),
    model: list[str] = typer.Option([], help="With --key: a model alias the key may call (repeatable)."),
    clear: bool = typer.Option(False, help="Remove all limits."),
) -> None:
    """Set limits (options left out are removed: the command states the whole set)."""
    limits = {} if clear else {
        k: v for k, v in {"rpm": rpm, "tpm": tpm, "max_parallel": max_parallel, "budget_daily": budget_daily,
                          "budget_monthly": budget_monthly, "budget_total": budget_total}.items() if v is not None
    }
    if key:
        body: dict[str, Any] = {"limits": limits}
        if model:
            body["models"] = list(model)
        print_json(api_call("PUT", f"/api/v1/gateway/keys/{key}", json=body))
    else:
        print_json(api_call("PUT", "/api/v1/gateway/limits", json=limits))


def chat(
    message: str = typer.Argument(..., help="What to say."),
    model: str = typer.Option("local", help="Model alias."),
    system: str = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(256, help="Longest answer (tokens)."),
    temperature: float = typer.Option(None, help="Sampling temperature."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Wait for the whole answer."),
) -> None:
    """Send one message through the gateway and print the answer as it streams: a smoke test."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                            "stream": not no_stream}
    if temperature is not None:
        body["temperature"] = temperature
    if not no_stream:
        body["stream_options"] = {"include_usage": True}  # the last chunk carries the usage printed below
    try:
        with api_client() as c:
            if no_stream:
                r = c.post("/v1/chat/completions", json=body, timeout=300)
                _fail(r)
                out = r.json()
                console.print(out["choices"][0]["message"]["content"] or "")
                _usage(out.get("usage"), r.headers.get("x-podium-trace-id"))
                return
            with c.stream("POST", "/v1/chat/completions", json=body, timeout=300) as r:
                if r.status_code >= 400:
                    r.read()
                    _fail(r)
                usage = None
                for line in r.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        err_console.print(f"\n[red]stream failed:[/] {chunk['error'].get('message')}")
                        raise typer.Exit(1)
                    for ch in chunk.get("choices") or ():
                        console.print((ch.get("delta") or {}).get("content") or "", end="", soft_wrap=True)
                    usage = chunk.get("usage") or usage
                console.print()
                _usage(usage, r.headers.get("x-podium-trace-id"))
    except httpx.HTTPError as e:
        err_console.print(f"[red]cannot reach the gateway:[/] {e}. Is `podium up` running at PODIUM_BASE_URL?")
        raise typer.Exit(1)


def _fail(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        msg = r.json()["error"]["message"]
    except Exception:
        msg = r.text
    err_console.print(f"[red]error {r.status_code}:[/] {msg}")
    raise typer.Exit(1)


def _usage(usage: Any, trace_id: str | None) -> None:
    if isinstance(usage, dict):
        err_console.print(f"[dim]{usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} completion "
                          f"tokens; trace {trace_id}[/]")

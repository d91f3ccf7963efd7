"""`podium up` and `podium db ...`."""

from __future__ import annotations

import typer

from podium.cli._common import console, err_console, open_store, server_extra_missing
from podium.config import Settings

__all__ = ["db_app", "up"]

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def up(
    host: str = typer.Option(None, help="Bind address (default 127.0.0.1, or PODIUM_HOST)."),
    port: int = typer.Option(None, help="Port (default 8700, or PODIUM_PORT)."),
    workers: int = typer.Option(
        None, "--workers", min=1, max=64,
        help="Server processes sharing HOST:PORT, each with its own ingest writer (default 1, or "
        "PODIUM_SERVER_WORKERS). Uses more than one core; see docs/ingestion.md.",
    ),
) -> None:
    """Migrate, create the default project on first start, and serve API + OTLP on HOST:PORT."""
    overrides = {k: v for k, v in {"host": host, "port": port, "server_workers": workers}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        import uvicorn

        from podium._logging import setup_logging
        from podium.server.app import create_app
        from podium.server.bootstrap import ensure_default_project
    except ImportError as e:
        raise server_extra_missing(e)
    setup_logging(settings.log_format)
    n = settings.server_workers
    columnar = settings.resolved_clickhouse_url
    if n > 1 and columnar is not None and columnar.startswith("chdb"):
        err_console.print(
            "--workers > 1 needs a ClickHouse server for spans (PODIUM_CLICKHOUSE_URL=clickhouse://...): "
            "the in-process chDB store belongs to one process. Use --workers 1."
        )
        raise typer.Exit(2)
    store = open_store(settings)
    default = ensure_default_project(store, settings)
    app = create_app(settings, store=store, freeze_gc=True, otlp_grpc=True) if n == 1 else None
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{shown_host}:{settings.port}"
    console.print(f"[bold green]Podium[/] serving on [bold]{url}[/]  (database: {store.engine.url.render_as_string()})")
    console.print(f"  Web UI     {url}/")
    console.print(f"  API docs   {url}/api/v1/docs")
    console.print(f"  OTLP/HTTP  {url}/v1/traces  (and /v1/logs)")
    if settings.otlp_grpc_port:
        console.print(f"  OTLP/gRPC  {shown_host}:{settings.otlp_grpc_port}  (PODIUM_OTLP_GRPC_PORT; 0 disables)")
    console.print(f"  Gateway    {url}/v1  (OpenAI-compatible; models: local, local-embed, ...)")
    if default.public_key and default.secret_key:
        what = "created" if default.created else "from"
        console.print(f"  Default project keys ({what} {default.keys_file}):")
        console.print(f"    export PODIUM_BASE_URL={url}")
        console.print(f"    export PODIUM_PUBLIC_KEY={default.public_key}")
        console.print(f"    export PODIUM_SECRET_KEY={default.secret_key}")
    if app is not None:
        uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="warning")
        return
    from podium.server.processes import serve_processes

    console.print(f"  Processes  {n} (--workers, PODIUM_SERVER_WORKERS)")
    store.close()  # each process opens its own; no connection crosses the fork
    raise typer.Exit(serve_processes(settings, n))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = Settings()
    try:
        from podium.store.engine import make_engine
        from podium.store.migrate import current_revision, upgrade
    except ImportError as e:
        raise server_extra_missing(e)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine, revision)
    console.print(f"database at revision [bold]{current_revision(engine)}[/]")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision."""
    settings = Settings()
    try:
        from podium.store.engine import make_engine
        from podium.store.migrate import current_revision
    except ImportError as e:
        raise server_extra_missing(e)
    rev = current_revision(make_engine(settings.resolved_database_url))
    if rev is None:
        err_console.print("database has no schema yet; run `podium db upgrade`")
        raise typer.Exit(1)
    console.print(rev)

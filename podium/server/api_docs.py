"""The interactive API docs (``/api/v1/docs``): Swagger UI served from this server, offline.

FastAPI's built-in page loads Swagger UI from a CDN and starts it with an inline script, which
neither works offline nor passes the Content-Security-Policy (``script-src 'self'``). This page
serves the ``swagger-ui-dist`` files that ``scripts/ui-assets.sh`` installs next to the UI's
other third-party files, and starts Swagger UI from a script file. Without those files the page
says how to install them (the schema itself stays at ``/api/v1/openapi.json``).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

__all__ = ["DOCS_PATH", "install_api_docs"]

DOCS_PATH = "/api/v1/docs"
VENDOR = Path(__file__).parent / "ui" / "static" / "vendor"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}

_INIT = """// Starts Swagger UI on /api/v1/docs (a file, not an inline script: the CSP allows none).
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
  });
});
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Podium API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{base}/swagger-ui.css">
<script src="{base}/swagger-ui-bundle.js" defer></script>
<script src="{base}/init.js" defer></script>
</head>
<body><div id="swagger-ui"></div></body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Podium API</title></head>
<body><h1>Podium API</h1>
<p>The interactive docs need Swagger UI's files, which are not installed: run
<code>bash scripts/ui-assets.sh</code> (the setup does it) and reload.</p>
<p>The schema is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>; the reference is docs/api.md.</p>
</body></html>
"""


def _installed() -> bool:
    return all((VENDOR / name).is_file() for name in _ASSETS)


async def docs_page(_request: Request) -> Response:
    if not _installed():
        return HTMLResponse(_MISSING)
    return HTMLResponse(_PAGE.format(base=DOCS_PATH))


async def docs_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "init.js":
        return Response(_INIT, media_type="text/javascript", headers={"cache-control": "no-cache"})
    if name not in _ASSETS or not (VENDOR / name).is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(VENDOR / name, media_type=_ASSETS[name], headers={"cache-control": "public, max-age=86400"})


def install_api_docs(app: Starlette) -> None:
    """Serve the docs page and its three files (create the app with ``docs_url=None``)."""
    app.add_route(DOCS_PATH, docs_page, methods=["GET"], include_in_schema=False)
    app.add_route(DOCS_PATH + "/{name}", docs_asset, methods=["GET"], include_in_schema=False)

"""ASGI factories for process managers (``uvicorn --factory podium.server.asgi:app``).

Each worker process builds its own app from the environment (``PODIUM_*``).
"""

from __future__ import annotations

from fastapi import FastAPI

from podium.config import Settings
from podium.server.app import create_app

__all__ = ["app", "gateway_app"]


def app() -> FastAPI:
    """API, ingestion and gateway."""
    return create_app(Settings(), freeze_gc=True)


def gateway_app() -> FastAPI:
    """Only the OpenAI-compatible gateway, /metrics and health."""
    return create_app(Settings(), mode="gateway", freeze_gc=True)

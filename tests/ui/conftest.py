"""The UI tests' one chromium: a session fixture shared by every module (Playwright's sync API
allows one instance per thread, so each module must not start its own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("PODIUM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1360, "height": 860}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/browser.sh` (make setup does it)", pytrace=False)
    vendor = ROOT / "podium" / "server" / "ui" / "static" / "vendor"
    if not (vendor / "htmx.min.js").is_file() or not (vendor / "uPlot.iife.min.js").is_file():
        pytest.fail("the UI's vendor files are missing: run `bash scripts/ui-assets.sh` (make setup does it)",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (make setup does it)", pytrace=False)
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()
    pw.stop()


class Watch:
    """Collects page errors, console errors and dialogs (an XSS would open one)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            if d.type == "confirm":
                d.accept()
            else:
                d.dismiss()

        page.on("dialog", on_dialog)

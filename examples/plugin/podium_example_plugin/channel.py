"""The `file` alert channel: appends each alert as one JSON line to a file."""

from __future__ import annotations

import json
from pathlib import Path

from podium.alerts import Alert, Channel, DeliveryError


class FileChannel(Channel):
    """Append each alert (its ``to_dict()``) as a JSON line to ``path``; handy for tests and audits."""

    name = "file"
    description = "Append each alert as a JSON line to a file"

    def __init__(self, path: str, *, retries: int = 0) -> None:
        super().__init__(retries=retries)
        if not path:
            raise ValueError("path must name the file to append to")
        self.path = Path(path)
        self.target = str(self.path)

    def _deliver(self, alert: Alert) -> int | None:
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(alert.to_dict(), sort_keys=True) + "\n")
        except OSError as e:
            raise DeliveryError(f"cannot append to {self.path}: {e.strerror}") from e
        return None

"""First start: a default project with an admin key pair, written to $PODIUM_HOME/default-keys.env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from podium.config import Settings, read_keys_file
from podium.errors import Conflict
from podium.store import Store

__all__ = ["DefaultProject", "ensure_default_project"]


@dataclass
class DefaultProject:
    name: str
    public_key: str | None
    secret_key: str | None
    created: bool
    keys_file: Path


def ensure_default_project(store: Store, settings: Settings) -> DefaultProject:
    path = settings.default_keys_file
    if store.projects.list_projects():
        keys = read_keys_file(path)
        return DefaultProject(
            name="default",
            public_key=keys.get("PODIUM_PUBLIC_KEY"),
            secret_key=keys.get("PODIUM_SECRET_KEY"),
            created=False,
            keys_file=path,
        )
    try:
        project = store.projects.create_project("default")
    except Conflict:  # another process starting on the same database created it first
        return DefaultProject("default", None, None, False, path)
    new = store.projects.create_key(project.id, role="admin", note="created on first start")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "# Podium default project keys (created on first start). `source` this file.\n"
            f"export PODIUM_BASE_URL=http://{settings.host}:{settings.port}\n"
            f"export PODIUM_PUBLIC_KEY={new.key.public_key}\n"
            f"export PODIUM_SECRET_KEY={new.secret_key}\n"
        )
    return DefaultProject("default", new.key.public_key, new.secret_key, True, path)

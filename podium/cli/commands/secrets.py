"""``podium secrets``: the encryption keys of provider secrets, and their rotation.

The sequence (docs/governance.md#secrets): ``add-key`` (new primary, old kept for decryption),
let the servers pick it up (key file) or restart them one at a time (``PODIUM_ENCRYPTION_KEY``),
``rotate``, then ``drop-old`` once ``status`` says nothing needs the old key.
"""

from __future__ import annotations

import getpass
import os
from collections import Counter
from typing import Any

import typer

from podium.cli._common import console, err_console, open_store, print_json
from podium.config import Settings
from podium.errors import PodiumError

__all__ = ["secrets_app"]

secrets_app = typer.Typer(help="Encryption keys of provider secrets: status, add a key, rotate, drop old keys.",
                          no_args_is_help=True)


def _fail(e: PodiumError) -> typer.Exit:
    err_console.print(f"[red]{e.message}[/]")
    return typer.Exit(1)


def _box(settings: Settings) -> Any:
    from podium.gateway.secrets import SecretBox

    return SecretBox.from_settings(settings.encryption_key, settings.home_dir)


def _key_file(settings: Settings) -> Any:
    return settings.home_dir / "secret.key"


@secrets_app.command("new-key")
def new_key() -> None:
    """Print a new random Fernet key (nothing is stored)."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())


@secrets_app.command("add-key")
def add_key(
    key: str = typer.Option(None, help="The new key (default: a new random one)."),
) -> None:
    """Make a new key the primary of $PODIUM_HOME/secret.key, keeping the old ones after it
    for decryption. With PODIUM_ENCRYPTION_KEY set, prints the value to set instead."""
    from cryptography.fernet import Fernet

    from podium.gateway.secrets import key_id, parse_keys

    settings = Settings()
    new = (key or Fernet.generate_key().decode()).strip()
    try:
        Fernet(new.encode())
    except (ValueError, TypeError):
        err_console.print("[red]--key is not a valid Fernet key[/] (32 url-safe base64 bytes): "
                          "`podium secrets new-key` prints one")
        raise typer.Exit(2)
    if settings.encryption_key:
        old = [k.decode() for k in parse_keys(settings.encryption_key)]
        console.print("PODIUM_ENCRYPTION_KEY is set, so nothing was written. Set it on every process to:")
        print(",".join([new, *old]))
        console.print("then restart the servers one at a time and run `podium secrets rotate`.")
        return
    path = _key_file(settings)
    old = [k.decode() for k in parse_keys(path.read_bytes())] if path.exists() else []
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".secret.key.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join([new, *old]) + "\n")
    os.replace(tmp, path)  # atomic: a server re-reading the file sees the old ring or the new one
    console.print(f"primary key is now {key_id(new)} in {path}; old keys kept for decryption: "
                  f"{', '.join(key_id(k) for k in old) or 'none'}")
    console.print("running servers pick it up within seconds; then run `podium secrets rotate`.")


@secrets_app.command("status")
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """The key ring (by key id, primary first) and how many stored secrets each key opens."""
    from podium.gateway.secrets import sealed_values

    settings = Settings()
    try:
        box = _box(settings)
        ids = box.key_ids
        counts: Counter[str] = Counter()
        for _where, value in sealed_values(open_store(settings)):
            i = box.which_key(value)
            counts[ids[i] if i is not None else "none"] += 1
    except PodiumError as e:
        raise _fail(e)
    source = "PODIUM_ENCRYPTION_KEY" if settings.encryption_key else str(_key_file(settings))
    ring = [{"id": k, "primary": i == 0, "secrets": counts.get(k, 0)} for i, k in enumerate(ids)]
    unreadable = counts.get("none", 0)
    if as_json:
        print_json({"source": source, "keys": ring, "unreadable": unreadable})
        return
    console.print(f"keys from {source}:")
    for k in ring:
        console.print(f"  {k['id']}{' (primary)' if k['primary'] else ''}: {k['secrets']} stored secrets")
    if unreadable:
        console.print(f"[red]{unreadable} stored secrets open with no key of the ring[/]")


@secrets_app.command("rotate")
def rotate(
    batch_size: int = typer.Option(200, min=1, max=10_000, help="Rows per transaction."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-encrypt every stored provider secret with the primary key, in batches, while servers
    keep serving; recorded in the audit log."""
    from podium.gateway.secrets import rotate_secrets
    from podium.governance.actor import Actor

    settings = Settings()
    try:
        box = _box(settings)
        store = open_store(settings)
        report = rotate_secrets(store, box, batch_size=batch_size)
        store.audit.append(project_id=None, actor=Actor("cli", getpass.getuser()), action="secrets.rotate",
                           target_type="encryption_key", target_id=report.primary,
                           detail={**report.as_dict(), "keys": box.key_ids})
    except PodiumError as e:
        raise _fail(e)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(f"rotated {report.values} secrets in {report.rows_rewritten} of {report.rows_scanned} rows "
                      f"({report.batches} batches) to key {report.primary}")
        for f in report.failed:
            err_console.print(f"[red]not rotated:[/] {f}")
    if report.failed:
        raise typer.Exit(1)


@secrets_app.command("drop-old")
def drop_old() -> None:
    """Remove every key but the primary from $PODIUM_HOME/secret.key, once no stored secret
    needs them (refused otherwise: run `podium secrets rotate` first)."""
    from podium.gateway.secrets import key_id, parse_keys, sealed_values

    settings = Settings()
    if settings.encryption_key:
        err_console.print("PODIUM_ENCRYPTION_KEY is set: set it to its first key alone on every process instead")
        raise typer.Exit(2)
    try:
        box = _box(settings)
        needing = sum(1 for _w, v in sealed_values(open_store(settings)) if not box.opens(v))
    except PodiumError as e:
        raise _fail(e)
    if needing:
        err_console.print(f"[red]{needing} stored secrets are not under the primary key yet[/]: "
                          "run `podium secrets rotate` first")
        raise typer.Exit(1)
    path = _key_file(settings)
    keys = parse_keys(path.read_bytes())
    tmp = path.with_name(".secret.key.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(keys[0] + b"\n")
    os.replace(tmp, path)
    console.print(f"kept {key_id(keys[0])}; dropped {', '.join(key_id(k) for k in keys[1:]) or 'nothing'}")

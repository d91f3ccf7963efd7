"""Serving registered versions through the gateway: the resolver the server gives the local
provider (``registry:/NAME@ALIAS`` or ``@3`` -> the version's GGUF file and its served name
``NAME@N``, the lineage convention of :func:`podium.registry.registry.served_names`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from podium.errors import BadRequest
from podium.gateway.providers.local import ModelResolver, ResolvedModel
from podium.registry.registry import ModelRegistry

__all__ = ["gguf_path", "registry_resolver", "wire_gateway"]


def gguf_path(version: dict[str, Any]) -> Path:
    """The local GGUF file of a version row; 400 (how to fix it) when it has none."""
    name, n = version["name"], version["version"]
    art = version.get("artifact") or {}
    uri = str(art.get("uri") or "")
    is_gguf = art.get("kind") == "gguf" or art.get("format") == "gguf" or uri.lower().endswith(".gguf")
    if not is_gguf:
        raise BadRequest(
            f"{name}@{n} is a {art.get('kind') or 'non-GGUF'} artifact; the gateway serves GGUF versions: package it "
            f"with `podium tune package --adapter DIR --register {name}` (or `--merged DIR`) and point the alias "
            "at the new version", details=[{"field": "model", "message": "not a GGUF version"}])
    if uri.startswith("file://"):
        uri = unquote(urlparse(uri).path)
    elif "://" in uri:
        raise BadRequest(f"{name}@{n}'s GGUF is at {uri}, not on this machine: the gateway loads local files only; "
                         "copy it here and register it with `podium registry register NAME --artifact FILE --kind gguf "
                         "--copy`", details=[{"field": "model", "message": "remote artifact"}])
    path = Path(uri).expanduser()
    if not path.is_file():
        raise BadRequest(f"{name}@{n}'s GGUF file {path} does not exist on this machine; register the file again "
                         "(`podium tune package ... --register NAME`) or restore it",
                         details=[{"field": "model", "message": "artifact file missing"}])
    return path


def registry_resolver(store: Any, home: Path) -> ModelResolver:
    """``(project_id, reference) -> ResolvedModel`` over ``store.models`` (raises NotFound for an
    unknown model, version or alias, BadRequest for a version without a local GGUF)."""
    registry = ModelRegistry(store, home)

    def resolve(project_id: str, ref: str) -> ResolvedModel:
        v = registry.resolve(project_id, ref)
        return ResolvedModel(path=gguf_path(v), served_name=f"{v['name']}@{v['version']}")

    return resolve


def wire_gateway(gateway: Any, store: Any, home: Path) -> None:
    """Give the gateway's local provider (when it has one) the registry resolver."""
    local = getattr(gateway, "providers", {}).get("local")
    set_resolver = getattr(local, "set_resolver", None)
    if set_resolver is not None:
        set_resolver(registry_resolver(store, home))

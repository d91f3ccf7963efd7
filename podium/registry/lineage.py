"""The lineage of a model version as a left-to-right chain: dataset version -> training run ->
model version -> deployments (gateway aliases whose deployments reference it) -> traces it
served (spans whose ``model`` is one of the version's served names)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from podium.errors import PodiumError
from podium.gateway.config import load_config
from podium.registry.registry import PREFIX, ModelRegistry, parse_ref, served_names

__all__ = ["gateway_deployments", "lineage"]

logger = logging.getLogger(__name__)


def gateway_deployments(store: Any, settings: Any, project_id: str) -> list[dict[str, Any]]:
    """Every gateway deployment of the project: the config file's aliases, then the API's."""
    out: list[dict[str, Any]] = []
    try:
        cfg = load_config(settings.gateway_config, home=settings.home_dir)
        for alias in cfg.aliases.values():
            for d in alias.deployments:
                out.append({"alias": alias.name, "provider": d.provider, "model": d.model, "weight": d.weight,
                            "source": "file"})
    except (PodiumError, OSError, ValueError) as e:  # an unreadable config hides file deployments only
        logger.warning("gateway config unreadable for lineage: %s", e)
    for row in store.gateway.list_models(project_id):
        for d in (row.get("spec") or {}).get("deployments") or []:
            out.append({"alias": row["name"], "provider": d.get("provider"), "model": d.get("model"),
                        "weight": d.get("weight", 1.0), "source": "api"})
    return out


def _points_at(reg: ModelRegistry, project_id: str, model: str | None, name: str, version: int) -> str | None:
    """The registry reference in ``model`` when it resolves to ``name@version``."""
    if not model or not model.startswith(PREFIX):
        return None
    try:
        ref = parse_ref(model)
        if ref.name != name:
            return None
        if ref.version is not None:
            return model if ref.version == version else None
        return model if reg.resolve(project_id, model)["version"] == version else None
    except PodiumError:
        return None


def lineage(reg: ModelRegistry, project_id: str, name: str, version: int,
            deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """The version's lineage graph: ``nodes`` in chain order and ``edges`` between them."""
    v = reg.repo.get_version(project_id, name, version)
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    ds = v["dataset"]
    if ds:
        info = reg.repo.dataset_version(project_id, ds["name"], ds["version"])
        nodes.append({"id": f"dataset:{ds['name']}@{ds['version']}", "kind": "dataset",
                      "label": f"{ds['name']} v{ds['version']}", "exists": info is not None,
                      "item_count": info["item_count"] if info else None,
                      "link": f"/datasets/{quote(ds['name'], safe='')}"})
    if v["training_run_id"]:
        # a Podium training run's page (docs/training-runs.md); an id from another tracker 404s there
        nodes.append({"id": f"run:{v['training_run_id']}", "kind": "run", "label": f"run {v['training_run_id']}",
                      "link": f"/training/{quote(v['training_run_id'], safe='')}"})
    if v["base_model"]:
        base = v["base_model"]
        link = None
        if base.startswith(PREFIX):
            try:
                b = reg.resolve(project_id, base)
                link = f"/registry/{quote(b['name'], safe='')}/versions/{b['version']}"
            except PodiumError:
                link = None
        nodes.append({"id": f"base:{base}", "kind": "base", "label": f"base {base}", "link": link})
    me = f"model:{name}@{version}"
    for n in nodes:
        edges.append({"from": n["id"], "to": me})
    nodes.append({"id": me, "kind": "version", "label": f"{name} v{version}",
                  "link": f"/registry/{quote(name, safe='')}/versions/{version}", "status": v["status"],
                  "aliases": v["aliases"]})
    deps = []
    for d in deployments:
        ref = _points_at(reg, project_id, d.get("model"), name, version)
        if ref is not None:
            deps.append({**d, "ref": ref})
    for d in deps:
        nid = f"deployment:{d['alias']}:{d['ref']}"
        nodes.append({"id": nid, "kind": "deployment", "label": f"gateway alias {d['alias']}", "ref": d["ref"],
                      "weight": d["weight"], "source": d["source"], "link": None})
        edges.append({"from": me, "to": nid})
    names = served_names(name, version)
    served = reg.repo.served(project_id, names)
    tid = "traces"
    nodes.append({"id": tid, "kind": "traces", "label": f"{served['traces']} traces ({served['spans']} spans)",
                  "served_names": names, **served, "link": f"/traces?model={quote(names[0], safe='')}"})
    for d in deps:
        edges.append({"from": f"deployment:{d['alias']}:{d['ref']}", "to": tid})
    if not deps:
        edges.append({"from": me, "to": tid})
    return {"name": name, "version": version, "nodes": nodes, "edges": edges}

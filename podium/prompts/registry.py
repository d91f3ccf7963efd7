"""The prompt registry's rules: what a valid version is, who may move which label, how a
label resolves for a request, and how two versions compare.

The server's routes call :class:`PromptRegistry`; it checks the input with
:mod:`podium.core.prompts` (names, templates, sizes, A/B targets), enforces protected
labels, and talks to storage through the :class:`PromptStore` protocol (implemented by
``podium.store.repos.prompts.PromptRepo``), never through SQL.

Invariants:
- versions are immutable and numbered 1, 2, 3... per prompt; ``latest`` is the newest;
- a protected label (project setting) is moved, removed or rolled back by admin keys only,
  including when a new version is created with that label;
- a version is at most ``MAX_VERSION_BYTES`` (template + config as JSON), else 413.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from podium.core.prompts import (
    LATEST,
    MAX_VERSION_BYTES,
    Target,
    check_label,
    check_prompt_name,
    check_targets,
    choose_version,
    diff_versions,
    template_variables,
    version_size,
)
from podium.core.roles import Action, roles_for
from podium.errors import BadRequest, Forbidden, PayloadTooLarge, ValidationFailed

__all__ = ["ADMIN_ROLES", "PromptRegistry", "PromptStore"]

#: Roles that may move protected labels and change the project's prompt settings.
ADMIN_ROLES = frozenset(roles_for(Action.ADMIN))
MAX_TAGS = 50
MAX_COMMIT_MESSAGE = 10_000


class PromptStore(Protocol):
    """What the registry needs from storage (``PromptRepo``)."""

    @property  # (project_id, name, *, keyword fields as PromptRepo.create_version declares them)
    def create_version(self) -> Callable[..., dict[str, Any]]: ...
    def get_version(self, project_id: str, name: str, version: int | str) -> dict[str, Any]: ...
    def get_label(self, project_id: str, name: str, label: str) -> dict[str, Any]: ...
    def set_label(self, project_id: str, name: str, label: str, targets: Sequence[Any], *,
                  actor: str | None = None, comment: str | None = None) -> dict[str, Any]: ...
    def delete_label(self, project_id: str, name: str, label: str, *, actor: str | None = None,
                     comment: str | None = None) -> None: ...
    def rollback_label(self, project_id: str, name: str, label: str, *, actor: str | None = None,
                       comment: str | None = None) -> dict[str, Any]: ...
    def protected_labels(self, project_id: str) -> list[str]: ...
    def put_settings(self, project_id: str, *, protected_labels: list[str]) -> dict[str, Any]: ...
    def set_tags(self, project_id: str, name: str, tags: list[str]) -> dict[str, Any]: ...
    def analytics(self, project_id: str, name: str, *, start: datetime | None = None,
                  end: datetime | None = None, version: int | None = None) -> list[dict[str, Any]]: ...


def _check_tags(tags: Any) -> list[str] | None:
    if tags is None:
        return None
    if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(
        isinstance(x, str) and 0 < len(x) <= 200 for x in tags
    ):
        raise ValidationFailed(f"tags must be a list of at most {MAX_TAGS} strings of 1-200 characters",
                               details=[{"field": "tags", "message": "invalid tags"}])
    return list(dict.fromkeys(tags))


class PromptRegistry:
    def __init__(self, store: PromptStore) -> None:
        self._store = store

    # --- permissions ----------------------------------------------------------------------------
    def _guard(self, project_id: str, role: str, labels: Sequence[str], what: str) -> None:
        if role in ADMIN_ROLES or not labels:
            return
        protected = set(self._store.protected_labels(project_id))
        hit = [lb for lb in labels if lb in protected]
        if hit:
            raise Forbidden(
                f"label {hit[0]!r} is protected in this project: only admin keys may {what} it "
                f"(this key's role is {role!r}); ask an admin, or use an unprotected label such as staging",
                details=[{"field": "label", "protected": sorted(protected)}],
            )

    # --- versions -------------------------------------------------------------------------------
    def create_version(self, project_id: str, body: Mapping[str, Any], *, role: str, actor: str | None,
                       name: str | None = None) -> dict[str, Any]:
        """Validate and store a new version. ``body``: ``prompt`` (string or messages), ``type``
        (inferred), ``config``, ``tags``, ``labels``, ``commit_message``, ``template_format``,
        ``base_version`` (optimistic lock). ``name`` from the path wins over ``body["name"]``."""
        known = {"name", "prompt", "type", "config", "tags", "labels", "commit_message", "template_format",
                 "base_version"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValidationFailed(f"unknown field(s) {unknown}; allowed: {', '.join(sorted(known))}",
                                   details=[{"field": u, "message": "unknown field"} for u in unknown])
        name = check_prompt_name(name if name is not None else body.get("name"))
        if "prompt" not in body:
            raise ValidationFailed("send the template as `prompt`: a string, or a list of chat messages",
                                   details=[{"field": "prompt", "message": "missing"}])
        template = body["prompt"]
        type_ = body.get("type") or ("chat" if isinstance(template, list) else "text")
        fmt = body.get("template_format") or "mustache"
        config = body.get("config")
        if config is not None and not isinstance(config, dict):
            raise ValidationFailed("config must be an object, e.g. {\"model\": \"local\", \"temperature\": 0.2}",
                                   details=[{"field": "config", "message": "not an object"}])
        size = version_size(template, config or {})
        if size > MAX_VERSION_BYTES:
            raise PayloadTooLarge(
                f"prompt version of {size:,} bytes is over the limit of {MAX_VERSION_BYTES:,} bytes "
                "(template and config, as JSON); keep large context out of the template and pass it as a variable",
                details=[{"field": "prompt", "size_bytes": size, "limit_bytes": MAX_VERSION_BYTES}],
            )
        variables, placeholders = template_variables(type_, template, fmt)
        labels = body.get("labels") or []
        if not isinstance(labels, list):
            raise ValidationFailed("labels must be a list like [\"staging\"]",
                                   details=[{"field": "labels", "message": "not a list"}])
        labels = [check_label(lb) for lb in labels]
        commit = body.get("commit_message")
        if commit is not None and (not isinstance(commit, str) or len(commit) > MAX_COMMIT_MESSAGE):
            raise ValidationFailed(f"commit_message must be a string of at most {MAX_COMMIT_MESSAGE} characters",
                                   details=[{"field": "commit_message", "message": "invalid"}])
        base = body.get("base_version")
        if base is not None and (not isinstance(base, int) or isinstance(base, bool) or base < 0):
            raise ValidationFailed("base_version must be the version number your change is based on (0: new prompt)",
                                   details=[{"field": "base_version", "message": "invalid"}])
        self._guard(project_id, role, labels, "move")
        return self._store.create_version(
            project_id, name, type=type_, template=template, template_format=fmt, config=config,
            variables=variables, placeholders=placeholders, size_bytes=size, commit_message=commit,
            tags=_check_tags(body.get("tags")), labels=labels, actor=actor, base_version=base,
        )

    def get_version(self, project_id: str, name: str, version: int | str) -> dict[str, Any]:
        return self._store.get_version(project_id, name, _version_arg(version))

    # --- labels ---------------------------------------------------------------------------------
    def set_label(self, project_id: str, name: str, label: str, body: Mapping[str, Any], *, role: str,
                  actor: str | None) -> dict[str, Any]:
        """``body``: ``{"version": 4}`` or ``{"versions": [{"version": 3, "weight": 90}, ...]}``,
        optional ``comment``."""
        check_label(label)
        unknown = sorted(set(body) - {"version", "versions", "comment"})
        if unknown:
            raise ValidationFailed(f"unknown field(s) {unknown}; send version, or versions with weights, and comment",
                                   details=[{"field": u, "message": "unknown field"} for u in unknown])
        if ("version" in body) == ("versions" in body):
            raise ValidationFailed("send exactly one of version (one version) or versions (an A/B split like "
                                   "[{\"version\": 3, \"weight\": 90}, {\"version\": 4, \"weight\": 10}])",
                                   details=[{"field": "version", "message": "one of version/versions"}])
        targets = check_targets([body["version"]] if "version" in body else body["versions"])
        self._guard(project_id, role, [label], "move")
        return self._store.set_label(project_id, name, label, targets, actor=actor,
                                     comment=_comment(body.get("comment")))

    def delete_label(self, project_id: str, name: str, label: str, *, role: str, actor: str | None,
                     comment: str | None = None) -> None:
        check_label(label)
        self._guard(project_id, role, [label], "remove")
        self._store.delete_label(project_id, name, label, actor=actor, comment=_comment(comment))

    def rollback_label(self, project_id: str, name: str, label: str, *, role: str, actor: str | None,
                       comment: str | None = None) -> dict[str, Any]:
        check_label(label)
        self._guard(project_id, role, [label], "roll back")
        return self._store.rollback_label(project_id, name, label, actor=actor, comment=_comment(comment))

    def resolve(self, project_id: str, name: str, *, label: str | None = None, version: int | str | None = None,
                seed: str | None = None) -> dict[str, Any]:
        """The version a request gets: by ``version``, or by ``label`` (default ``production``),
        an A/B split chosen by ``seed`` (user or session id; random without)."""
        if version is not None and label is not None:
            raise BadRequest("pass version or label, not both", details=[{"field": "version"}, {"field": "label"}])
        if version is not None:
            v = self._store.get_version(project_id, name, _version_arg(version))
            return {**v, "resolved_by": {"version": v["version"]}}
        label = check_label(label or "production", allow_latest=True)
        info = self._store.get_label(project_id, name, label)
        targets = [Target(x["version"], x["weight"]) for x in info["targets"]]
        chosen = choose_version(targets, name=name, label=label, seed=seed)
        v = next(x for x in info["versions"] if x["version"] == chosen)
        return {**v, "resolved_by": {"label": label, "targets": info["targets"], "ab": len(targets) > 1,
                                     "seed": seed is not None}}

    # --- comparing --------------------------------------------------------------------------------
    def diff(self, project_id: str, name: str, a: str, b: str) -> dict[str, Any]:
        """Diff two versions; each side is a version number or a label (its main version)."""
        return diff_versions(self._side(project_id, name, a), self._side(project_id, name, b))

    def _side(self, project_id: str, name: str, ref: str) -> dict[str, Any]:
        if _is_version_number(ref):
            return self._store.get_version(project_id, name, int(ref))
        label = check_label(ref, allow_latest=True)
        info = self._store.get_label(project_id, name, label)
        return next(x for x in info["versions"] if x["version"] == info["version"])

    # --- settings ---------------------------------------------------------------------------------
    def put_settings(self, project_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - {"protected_labels"})
        if unknown:
            raise ValidationFailed(f"unknown field(s) {unknown}; send protected_labels",
                                   details=[{"field": u, "message": "unknown field"} for u in unknown])
        labels = body.get("protected_labels")
        if not isinstance(labels, list) or len(labels) > 100:
            raise ValidationFailed("protected_labels must be a list of labels, e.g. [\"production\"]",
                                   details=[{"field": "protected_labels", "message": "not a list"}])
        return self._store.put_settings(project_id, protected_labels=[check_label(lb) for lb in labels])

    def set_tags(self, project_id: str, name: str, tags: Any) -> dict[str, Any]:
        checked = _check_tags(tags)
        if checked is None:
            raise ValidationFailed("send tags as a list of strings", details=[{"field": "tags", "message": "missing"}])
        return self._store.set_tags(project_id, name, checked)


def _is_version_number(s: str) -> bool:
    """ASCII digits only ("³".isdigit() is true but int("³") fails) and small enough for the database."""
    return s.isascii() and s.isdigit() and len(s) < 10


def _version_arg(version: int | str) -> int | str:
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if isinstance(version, str):
        if version == LATEST:
            return LATEST
        if _is_version_number(version):
            return int(version)
    raise ValidationFailed(f"a version is a positive number or 'latest'; got {version!r}",
                           details=[{"field": "version", "message": "not a version number"}])


def _comment(c: Any) -> str | None:
    if c is None:
        return None
    if not isinstance(c, str) or len(c) > MAX_COMMIT_MESSAGE:
        raise ValidationFailed(f"comment must be a string of at most {MAX_COMMIT_MESSAGE} characters",
                               details=[{"field": "comment", "message": "invalid"}])
    return c

"""The registry's rules: model and alias names, version references (``name@3``,
``name@champion``, ``registry:/name@champion``), artifacts (a recorded path or URI, or a local
file copied under ``$PODIUM_HOME/models/<name>/<version>/`` with its sha256), and the service the
API, CLI and UI share (:class:`ModelRegistry`)."""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.errors import BadRequest, NotFound, ValidationFailed

__all__ = [
    "ARTIFACT_KINDS",
    "PREFIX",
    "ModelRegistry",
    "Ref",
    "check_alias",
    "check_name",
    "copy_hashed",
    "parse_dataset",
    "parse_ref",
    "served_names",
    "sha256_file",
]

PREFIX = "registry:/"
ARTIFACT_KINDS = ("adapter", "merged", "gguf", "external")
STATUSES = ("ready", "archived")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_RESERVED = frozenset({"latest"})
_CHUNK = 1 << 20


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ValidationFailed(
            f"model name {name!r} is not valid: use 1-200 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no '@' or '/': those separate a name from its version)",
            details=[{"field": "name", "message": "invalid model name"}])
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias or "") or alias in _RESERVED:
        raise ValidationFailed(
            f"alias {alias!r} is not valid: use 1-64 lowercase letters, digits, '_' or '-', starting with a "
            "letter (e.g. champion, challenger); 'latest' is reserved for the newest version",
            details=[{"field": "alias", "message": "invalid alias"}])
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``version`` (a number) or ``alias`` (``latest`` when neither was given)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.alias}"


def parse_ref(ref: str) -> Ref:
    """``name``, ``name@3``, ``name@champion``, with or without ``registry:/`` in front."""
    s = (ref or "").strip()
    if s.startswith(PREFIX):
        s = s[len(PREFIX):]
    name, sep, tail = s.partition("@")
    if not _NAME.match(name) or (sep and not tail):
        raise BadRequest(f"model reference {ref!r} is not valid: write NAME, NAME@VERSION (NAME@3) or NAME@ALIAS "
                         "(NAME@champion), optionally prefixed with registry:/",
                         details=[{"field": "ref", "message": "invalid reference"}])
    if not sep or tail == "latest":
        return Ref(name, alias="latest")
    if tail.isdigit():
        if int(tail) < 1:
            raise BadRequest(f"model reference {ref!r}: versions start at 1",
                             details=[{"field": "ref", "message": "invalid version"}])
        return Ref(name, version=int(tail))
    check_alias(tail)
    return Ref(name, alias=tail)


def parse_dataset(ref: str) -> tuple[str, int]:
    """``dataset@3`` -> ("dataset", 3)."""
    name, _, v = (ref or "").rpartition("@")
    if not name or not v.isdigit() or int(v) < 1:
        raise BadRequest(f"dataset reference {ref!r} is not valid: write DATASET@VERSION, e.g. support-sft@3",
                         details=[{"field": "dataset", "message": "invalid dataset reference"}])
    return name, int(v)


def served_names(name: str, version: int) -> list[str]:
    """The ``model`` values a span carries when this version served it (the gateway's local
    provider records the resolved reference)."""
    return [f"{name}@{version}", f"{PREFIX}{name}@{version}"]


def sha256_file(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Stream ``src`` to ``dst`` hashing as it goes."""
    h, n = hashlib.sha256(), 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fi, dst.open("wb") as fo:
        while chunk := fi.read(_CHUNK):
            h.update(chunk)
            fo.write(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _guess_format(uri: str) -> str | None:
    low = uri.lower()
    for ext, fmt in ((".gguf", "gguf"), (".safetensors", "safetensors"), (".bin", "pytorch"), (".onnx", "onnx")):
        if low.endswith(ext):
            return fmt
    return None


class ModelRegistry:
    """Registered models over ``store.models``; ``home`` is ``$PODIUM_HOME`` (for copies)."""

    def __init__(self, store: Any, home: Path) -> None:
        self.store = store
        self.repo = store.models
        self.home = home

    # --- versions -------------------------------------------------------------------------------
    def register(self, project_id: str, name: str, *, artifact: str, kind: str = "merged",
                 format: str | None = None, sha256: str | None = None, copy: bool = False,
                 base_model: str | None = None, training_run_id: str | None = None, dataset: str | None = None,
                 eval_results: list[dict[str, Any]] | None = None, metadata: dict[str, Any] | None = None,
                 description: str | None = None, size: int | None = None, local: bool = True,
                 expected_version: int | None = None, actor: str | None = None) -> dict[str, Any]:
        """Record a new version. ``artifact`` is a local path or a URI; local files are hashed
        (and with ``copy`` copied under ``$PODIUM_HOME/models/<name>/<version>/``). Nothing is
        downloaded. ``local=False`` (the API): the artifact is recorded as given, its size and sha256
        as the caller states them; the server never opens a path a client names."""
        check_name(name)
        if kind not in ARTIFACT_KINDS:
            raise ValidationFailed(f"artifact kind {kind!r} is not one of {', '.join(ARTIFACT_KINDS)}",
                                   details=[{"field": "artifact.kind", "message": "unknown kind"}])
        if base_model and base_model.startswith(PREFIX):
            self.resolve(project_id, base_model)  # a registry base must exist
        ds_name, ds_version = parse_dataset(dataset) if dataset else (None, None)
        if ds_name is not None and ds_version is not None and \
                self.repo.dataset_version(project_id, ds_name, ds_version) is None:
            raise NotFound(f"dataset {ds_name!r} has no version {ds_version} in this project; "
                           "`podium datasets list` shows the datasets and their versions",
                           details=[{"field": "dataset", "message": "unknown dataset version"}])
        is_uri = "://" in artifact
        art: dict[str, Any] = {"kind": kind, "uri": artifact, "format": format or _guess_format(artifact),
                               "size": size, "sha256": sha256.lower() if sha256 else None, "copied": False}
        tmp: Path | None = None
        if not local:
            if copy:
                raise BadRequest("copy works only from the CLI on the machine that has the file "
                                 "(`podium registry register NAME --artifact PATH --copy`); the API records "
                                 "the path or URI as given", details=[{"field": "copy", "message": "CLI only"}])
        elif not is_uri:
            src = Path(artifact).expanduser()
            if not src.is_file():
                raise BadRequest(f"artifact {artifact!r} is not a file on this machine; pass an existing path "
                                 "(a directory: archive it first) or a URI (s3://, hf://, file://)",
                                 details=[{"field": "artifact", "message": "no such file"}])
            art["uri"] = str(src.resolve())
            if copy:
                tmp = self.home / "models" / name / f".tmp-{uuid.uuid4().hex}" / src.name
                digest, size = copy_hashed(src, tmp)
            else:
                digest, size = sha256_file(src)
            if sha256 and sha256.lower() != digest:
                if tmp is not None:
                    shutil.rmtree(tmp.parent, ignore_errors=True)
                raise BadRequest(f"artifact sha256 mismatch: the file hashes to {digest}, not {sha256}; "
                                 "check the file or drop --sha256",
                                 details=[{"field": "sha256", "message": "mismatch"}])
            art.update(sha256=digest, size=size)
        elif copy:
            raise BadRequest("copy works only for a local file; a URI is recorded as is (nothing is downloaded)",
                             details=[{"field": "copy", "message": "not for URIs"}])
        fields = {"artifact": art, "base_model": base_model, "training_run_id": training_run_id,
                  "dataset_name": ds_name, "dataset_version": ds_version, "eval_results": eval_results or [],
                  "metadata": metadata or {}, "description": description}
        try:
            row: dict[str, Any] = self.repo.create_version(project_id, name, fields, actor=actor,
                                                             expected_version=expected_version)
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp.parent, ignore_errors=True)
            raise
        if tmp is not None:
            final = self.home / "models" / name / str(row["version"]) / tmp.name
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            shutil.rmtree(tmp.parent, ignore_errors=True)
            art = {**art, "uri": str(final), "copied": True}
            # The path is known only once the number is: record it (still one immutable artifact).
            row = self.repo.set_artifact_path(project_id, name, row["version"], art)
        return row

    def resolve(self, project_id: str, ref: str) -> dict[str, Any]:
        """The version a reference points at (``name@3``, ``name@champion``, ``registry:/...``)."""
        r = parse_ref(ref)
        if r.version is not None:
            return dict(self.repo.get_version(project_id, r.name, r.version))
        model = self.repo.get_model(project_id, r.name)
        if r.alias == "latest":
            if not model["latest_version"]:
                raise NotFound(f"model {r.name!r} has no versions yet; register one with "
                               f"`podium registry register {r.name} --artifact PATH`")
            return dict(self.repo.get_version(project_id, r.name, model["latest_version"]))
        v = model["aliases"].get(r.alias)
        if v is None:
            have = sorted(model["aliases"])
            raise NotFound(f"model {r.name!r} has no alias {r.alias!r}; its aliases: {', '.join(have) or 'none'} "
                           f"(set one with `podium registry alias {r.name} {r.alias} VERSION`)",
                           details=[{"field": "alias", "available": have}])
        return dict(self.repo.get_version(project_id, r.name, v))

    def set_alias(self, project_id: str, name: str, alias: str, version: int, *, actor: str | None = None,
                  comment: str | None = None) -> dict[str, Any]:
        check_alias(alias)
        return dict(self.repo.set_alias(project_id, name, alias, version, actor=actor, comment=comment))

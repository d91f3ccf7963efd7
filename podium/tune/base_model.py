"""The base model a fine-tuning run starts from: the bundled SmolLM2-135M-Instruct GGUF converted
once into a Hugging Face folder (config, tokenizer, fp32 safetensors) and cached under
``$PODIUM_HOME/models/base/``, or a local Hugging Face folder checked and used as is.

The conversion (transformers' GGUF loader dequantizes to fp32; ``save_pretrained`` refuses a
GGUF-loaded model, so the weights are copied into a model rebuilt from its config) runs under a
file lock, into a temporary folder renamed into place, so two processes never convert at once
and a crash never leaves a half-written folder. Nothing touches the network."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podium.config import Settings
from podium.errors import ConfigurationError, ValidationFailed

__all__ = ["BUNDLED", "base_cache_dir", "ensure_base_model", "offline", "torch_threads"]

logger = logging.getLogger(__name__)

BUNDLED = "smollm2"
_BUNDLED_NAMES = {BUNDLED, "smollm2-135m-instruct", "local"}
_STEM = "smollm2-135m-instruct"
_MARKER = "podium-base.json"
_HASHES: dict[tuple[str, int, int], str] = {}


def offline() -> None:
    """Make the Hugging Face libraries offline for this process: no hub call, ever. Call before
    importing transformers, peft, trl or datasets."""
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[k] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def torch_threads() -> int:
    """CPU threads for torch: ``OMP_NUM_THREADS`` when set, else all the cores this process may
    run on but one (at least one), like the local models. One core stays for the server and the
    OS: a torch thread on a busy core stalls its peers at every barrier (measured on 2 cores with
    other work running: 21 s/step with 2 threads, 4.7 s/step with 1)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n - 1)


def base_cache_dir(settings: Settings) -> Path:
    return settings.home_dir / "models" / "base"


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _bundled_gguf(settings: Settings) -> Path:
    if settings.local_model_path is not None:
        p = settings.local_model_path.expanduser()
        if not p.is_file():
            raise ConfigurationError(f"PODIUM_LOCAL_MODEL_PATH {p} is not a file; point it at a GGUF file or unset it")
        return p
    from podium.inference.llama import default_model_path

    return default_model_path()


def _check_folder(path: Path, spec: str) -> Path:
    if not path.is_dir():
        raise ValidationFailed(
            f"base_model {spec!r} is neither `smollm2` (the bundled model) nor a folder on this machine; "
            "name a local Hugging Face model folder (config.json, tokenizer, weights) or registry:/NAME@ALIAS",
            details=[{"field": "base_model"}])
    if not (path / "config.json").is_file():
        raise ValidationFailed(f"base_model folder {path} has no config.json: it is not a Hugging Face model "
                               "folder (save one with save_pretrained)", details=[{"field": "base_model"}])
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ValidationFailed(f"base_model folder {path} has no weights (*.safetensors or *.bin)",
                               details=[{"field": "base_model"}])
    return path.resolve()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_base_model(settings: Settings, spec: str = BUNDLED) -> Path:
    """The Hugging Face folder for ``spec``: ``smollm2`` (the bundled GGUF, converted on first use:
    about 20 s and 520 MB, then reused) or a local model folder (checked, returned as is)."""
    spec = spec.strip()
    if spec.lower() not in _BUNDLED_NAMES:
        return _check_folder(Path(spec).expanduser(), spec)
    gguf = _bundled_gguf(settings)
    root = base_cache_dir(settings)
    target = root / f"{_STEM}-{_sha256(gguf)[:12]}"
    if (target / _MARKER).is_file():
        return target
    with _locked(root / f".{target.name}.lock"):
        if (target / _MARKER).is_file():  # another process converted it while we waited
            return target
        tmp = root / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
        try:
            _convert(gguf, tmp)
            if target.exists():  # a folder without the marker: a crash before this code existed
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """GGUF -> transformers folder: load (dequantized fp32), rebuild from config without the
    quantization config, copy the weights, save; tokenizer from the same GGUF."""
    offline()
    t0 = time.perf_counter()
    logger.info("converting %s into a transformers folder (once)", gguf)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    quiet: Any = hf_logging  # (untyped functions)
    quiet.disable_progress_bar()
    torch.set_num_threads(torch_threads())
    src_dir, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    auto: Any = AutoModelForCausalLM  # (from_config is untyped)
    model = auto.from_config(cfg, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if real_missing or unexpected:
        raise ConfigurationError(f"converting {gguf} failed: missing weights {real_missing[:5]}, "
                                 f"unexpected {list(unexpected)[:5]}")
    del loaded
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info: dict[str, Any] = {"source": str(gguf), "sha256": _sha256(gguf), "dtype": "float32",
                            "seconds": round(time.perf_counter() - t0, 1),
                            "params": sum(p.numel() for p in model.parameters())}
    (out / _MARKER).write_text(json.dumps(info, indent=2) + "\n")
    logger.info("converted %s in %.1f s", gguf.name, info["seconds"])

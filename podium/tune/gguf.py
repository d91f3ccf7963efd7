"""Packaging a fine-tuned model for llama.cpp: merge a LoRA adapter into its base
(:func:`merge_adapter`), write the merged Hugging Face folder as a GGUF (:func:`to_gguf`) and
quantize it (:func:`quantize`: ``q8_0``, ``q4_k_m`` through llama.cpp's own quantizer).

:func:`to_gguf` needs no llama.cpp converter script: it copies the metadata and tokenizer key/values
from a template GGUF of the same architecture (the bundled SmolLM2 GGUF the base model was
converted from), maps the Hugging Face tensor names back to GGUF names with ``gguf``'s
``TensorNameMap``, and undoes what transformers' GGUF loader did to a llama model: it
reverse-permutes ``attn_q``/``attn_k`` rows (rotary halves interleaved the way llama.cpp wants
them), so the writer applies llama.cpp's ``convert_hf_to_gguf`` permutation again. 2-D weights are
written as F16 (or F32), 1-D norms always as F32; a tied ``lm_head`` is not written (llama.cpp
reuses ``token_embd``). Heavy imports (torch, transformers, peft, safetensors, gguf, llama_cpp)
happen inside the functions."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError, ValidationFailed
from podium.tune.extra import require_tune_extra

__all__ = ["OUTTYPES", "QUANT_TYPES", "gguf_file_type", "merge_adapter", "quantize", "to_gguf"]

logger = logging.getLogger(__name__)

#: What :func:`to_gguf` writes.
OUTTYPES = ("f16", "f32")
#: What :func:`quantize` makes (llama.cpp ftype names, lowercase).
QUANT_TYPES = ("q8_0", "q4_k_m")
# llama.cpp's llama_ftype numbers (general.file_type): ALL_F32 0, MOSTLY_F16 1, Q8_0 7, Q4_K_M 15.
_FILE_TYPES = {"f32": 0, "f16": 1, "q4_1": 3, "q8_0": 7, "q4_k_m": 15}
# Template keys that describe the file rather than the model: the writer sets its own.
_SKIP_KEYS = ("GGUF.", "general.architecture", "general.file_type")


def _offline() -> None:
    from podium.tune.base_model import offline

    offline()


# GGUF value types -> struct format of a scalar (8: string, 9: array are read by hand).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_file_type(path: Path) -> str | None:
    """The quantization of a GGUF (``f16``, ``q8_0``, ``q4_k_m``, ...) from its ``general.file_type``,
    read from the header without parsing the whole file (``GGUFReader`` takes seconds on a 49k-token
    vocabulary)."""
    import struct

    with Path(path).open("rb") as f:

        def read(fmt: str) -> Any:
            size = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(size))[0]

        def skip(vtype: int) -> None:
            if vtype == 8:
                f.seek(read("Q"), 1)
            elif vtype == 9:
                sub, count = read("I"), read("Q")
                if sub in _SCALARS:
                    f.seek(struct.calcsize("<" + _SCALARS[sub]) * count, 1)
                else:
                    for _ in range(count):
                        skip(sub)
            else:
                f.seek(struct.calcsize("<" + _SCALARS[vtype]), 1)

        if f.read(4) != b"GGUF":
            raise ValidationFailed(f"{path} is not a GGUF file", details=[{"field": "path"}])
        read("I")  # version
        read("Q")  # tensor count
        for _ in range(read("Q")):
            key = f.read(read("Q")).decode("utf-8", "replace")
            vtype = read("I")
            if key == "general.file_type" and vtype in _SCALARS:
                n = int(read(_SCALARS[vtype]))
                return next((k for k, v in _FILE_TYPES.items() if v == n), f"ftype-{n}")
            skip(vtype)
    return None


# --- merge -------------------------------------------------------------------------------------


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge the LoRA adapter in ``adapter_dir`` into the Hugging Face model in ``base_dir`` and save
    the result (safetensors + tokenizer) to ``out_dir`` (written to a temporary folder, then renamed)."""
    require_tune_extra("merging an adapter", ("torch", "transformers", "peft"))
    _offline()
    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ValidationFailed(f"{adapter_dir} is not a LoRA adapter folder (no adapter_config.json); pass the "
                               "`adapter/` folder a `podium tune sft|dpo` run wrote",
                               details=[{"field": "adapter"}])
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir
    tok = AutoTokenizer.from_pretrained(str(tok_src))
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("merged %s into %s in %.1f s", adapter_dir, base_dir, time.perf_counter() - t0)
    return out_dir


# --- HF folder -> GGUF ---------------------------------------------------------------------------


def _permute(w: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's ``convert_hf_to_gguf`` ``LlamaModel.permute`` (the inverse of transformers'
    ``_reverse_permute_weights``)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_state(hf_dir: Path) -> dict[str, Any]:
    """The folder's weights as float32 numpy arrays (safetensors, or a torch .bin)."""
    files = sorted(hf_dir.glob("*.safetensors"))
    out: dict[str, Any] = {}
    if files:
        from safetensors.numpy import load_file

        try:
            for f in files:
                out.update(load_file(str(f)))
            return {k: v.astype("float32") for k, v in out.items()}
        except (TypeError, ValueError):  # bf16 tensors: numpy cannot hold them; go through torch
            out = {}
            from safetensors.torch import load_file as load_torch

            for f in files:
                out.update({k: v.float().numpy() for k, v in load_torch(str(f)).items()})
            return out
    bins = sorted(hf_dir.glob("*.bin"))
    if not bins:
        raise ValidationFailed(f"{hf_dir} has no weights (*.safetensors or *.bin)", details=[{"field": "hf_dir"}])
    import torch

    for f in bins:
        out.update({k: v.float().numpy() for k, v in torch.load(str(f), map_location="cpu").items()})
    return out


def _check_config(cfg: dict[str, Any], fields: dict[str, Any], arch: str) -> None:
    pairs = (("num_hidden_layers", "block_count"), ("hidden_size", "embedding_length"),
             ("intermediate_size", "feed_forward_length"), ("num_attention_heads", "attention.head_count"),
             ("num_key_value_heads", "attention.head_count_kv"), ("vocab_size", "vocab_size"))
    bad = []
    for hf_key, gg_key in pairs:
        f = fields.get(f"{arch}.{gg_key}")
        if f is None or cfg.get(hf_key) is None:
            continue
        if int(f.contents()) != int(cfg[hf_key]):
            bad.append(f"{hf_key}={cfg[hf_key]} but the template has {gg_key}={int(f.contents())}")
    if bad:
        raise ValidationFailed("the model does not match the template GGUF (" + "; ".join(bad) + "): pass the GGUF "
                               "of the base model it was fine-tuned from as the template",
                               details=[{"field": "template"}])


def to_gguf(hf_dir: Path, out_path: Path, *, template: Path, outtype: str = "f16") -> Path:
    """Write the Hugging Face llama-architecture model in ``hf_dir`` as a GGUF at ``out_path``, taking
    the metadata and tokenizer from ``template`` (a GGUF of the same base model)."""
    require_tune_extra("writing a GGUF", ("torch", "gguf", "safetensors"))
    if outtype not in OUTTYPES:
        raise ValidationFailed(f"outtype {outtype!r} is not one of {', '.join(OUTTYPES)}; quantize the f16 file "
                               "with quantize() for q8_0 or q4_k_m", details=[{"field": "outtype"}])
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, get_tensor_name_map
    from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES

    hf_dir, out_path, template = Path(hf_dir), Path(out_path), Path(template)
    cfg = json.loads((hf_dir / "config.json").read_text())
    if cfg.get("model_type") not in ("llama", None):
        raise ValidationFailed(f"{hf_dir} is a {cfg.get('model_type')!r} model; only llama-architecture models "
                               "(SmolLM2 and its fine-tunes) are converted", details=[{"field": "hf_dir"}])
    t0 = time.perf_counter()
    reader = GGUFReader(str(template))
    arch_field = reader.fields.get("general.architecture")
    arch = str(arch_field.contents()) if arch_field is not None else ""
    if arch != "llama":
        raise ValidationFailed(f"template {template} is a {arch or 'unknown'!r} GGUF; use the llama GGUF the base "
                               "model came from", details=[{"field": "template"}])
    _check_config(cfg, reader.fields, arch)
    n_layers = int(cfg["num_hidden_layers"])
    n_head = int(cfg["num_attention_heads"])
    n_head_kv = int(cfg.get("num_key_value_heads") or n_head)
    template_names = {t.name for t in reader.tensors}
    name_map = get_tensor_name_map(next(a for a, n in MODEL_ARCH_NAMES.items() if n == arch and a == MODEL_ARCH.LLAMA),
                                   n_layers)
    state = _load_state(hf_dir)
    tied = bool(cfg.get("tie_word_embeddings")) or "output.weight" not in template_names

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{out_path.name}")
    writer = GGUFWriter(str(tmp), arch)
    try:
        for key, field in reader.fields.items():
            if key == "general.file_type":  # where the template has it: before the vocabulary, read fast
                writer.add_file_type(_FILE_TYPES[outtype])
            if key.startswith(_SKIP_KEYS):
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
        if "general.file_type" not in reader.fields:
            writer.add_file_type(_FILE_TYPES[outtype])
        written = set()
        for hf_name, w in state.items():
            if hf_name == "lm_head.weight" and tied:
                continue
            base, _dot, suffix = hf_name.rpartition(".")
            gname = name_map.get_name(base)
            if gname is None:
                raise ValidationFailed(f"tensor {hf_name!r} has no GGUF name for the llama architecture",
                                       details=[{"field": "hf_dir"}])
            gname = f"{gname}.{suffix}"
            if gname.endswith("attn_q.weight"):
                w = _permute(w, n_head, n_head)
            elif gname.endswith("attn_k.weight"):
                w = _permute(w, n_head, n_head_kv)
            if w.ndim == 1 or outtype == "f32":
                arr = np.ascontiguousarray(w, dtype=np.float32)
            else:
                arr = np.ascontiguousarray(w, dtype=np.float16)
            writer.add_tensor(gname, arr)
            written.add(gname)
        missing = template_names - written
        if missing:
            raise ValidationFailed(f"the model lacks tensors the template has: {sorted(missing)[:5]}",
                                   details=[{"field": "hf_dir"}])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(out_path)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    logger.info("wrote %s (%s, %d tensors) in %.1f s", out_path, outtype, len(written), time.perf_counter() - t0)
    return out_path


# --- quantize -------------------------------------------------------------------------------------


def quantize(in_gguf: Path, out_gguf: Path, qtype: str, *, threads: int | None = None) -> Path:
    """Quantize an F16/F32 GGUF with llama.cpp's quantizer (``llama_model_quantize``): ``q8_0`` or
    ``q4_k_m`` (tensors whose rows are not a multiple of 256 fall back to a compatible type, as
    llama.cpp's ``llama-quantize`` does)."""
    q = qtype.lower()
    if q not in QUANT_TYPES:
        raise ValidationFailed(f"quantization {qtype!r} is not one of {', '.join(QUANT_TYPES)} (f16 is the "
                               "unquantized file to_gguf writes)", details=[{"field": "quant"}])
    try:
        import llama_cpp
    except ImportError as e:
        raise ConfigurationError(f"llama-cpp-python is not installed ({e}): run `pip install 'podium[local]'`") from e
    in_gguf, out_gguf = Path(in_gguf), Path(out_gguf)
    if not in_gguf.is_file():
        raise ValidationFailed(f"{in_gguf} does not exist", details=[{"field": "in_gguf"}])
    out_gguf.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_gguf.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{out_gguf.name}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0 if q == "q8_0" else llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads or max(1, len(os.sched_getaffinity(0)))
    t0 = time.perf_counter()
    llama_log = logging.getLogger("llama-cpp-python")  # llama_cpp prints every tensor below ERROR
    level = llama_log.level
    llama_log.setLevel(logging.ERROR)
    try:
        # llama.cpp prints a fallback warning per tensor straight to stderr: hidden like a quiet model load
        # (fds 1/2 redirected; the CLI and bench call this, never a server).
        try:
            from llama_cpp._utils import suppress_stdout_stderr

            quiet: Any = suppress_stdout_stderr(disable=False)
        except ImportError:
            quiet = contextlib.nullcontext()
        with quiet:
            rc = llama_cpp.llama_model_quantize(str(in_gguf).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise ConfigurationError(f"llama.cpp could not quantize {in_gguf} to {q} (code {rc}); is it an F16 or "
                                     "F32 GGUF written by `podium tune package`?")
        tmp.replace(out_gguf)
    finally:
        llama_log.setLevel(level)
        tmp.unlink(missing_ok=True)
    logger.info("quantized %s -> %s (%s) in %.1f s", in_gguf.name, out_gguf.name, q, time.perf_counter() - t0)
    return out_gguf

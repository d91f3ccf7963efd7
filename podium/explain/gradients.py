"""Integrated gradients for the local model (Captum), on the transformers route.

The bundled SmolLM2 GGUF is loaded through transformers (converted once into a Hugging Face
folder by ``podium.tune.base_model.ensure_base_model``, the same cache fine-tuning uses; or any
local Hugging Face folder), and Captum's ``LLMGradientAttribution`` wraps
``LayerIntegratedGradients`` on the token embeddings: for each token of the fixed response, the
gradient of its log-probability is integrated along the straight path from a baseline embedding
(token id 0) to each prompt token's embedding, ``n_steps`` points. A prompt token's weight is the
sum over the response tokens (``seq_attr``); the per-response-token matrix comes back in
``extra.token_attr`` when asked.

Cost: about ``n_steps`` forward + backward passes per response token (CPU: seconds for a short
answer with the default 8 steps). Gradients can be noisy on long prompts: occlusion is the
causal check (``podium.explain.occlusion``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from podium.errors import ValidationFailed
from podium.explain.extra import quiet_import, require
from podium.explain.result import Explanation, Segment

__all__ = ["DEFAULT_STEPS", "MAX_RESPONSE_TOKENS", "integrated_gradients", "load_hf_model"]

DEFAULT_STEPS = 8
MAX_RESPONSE_TOKENS = 64
_CACHE: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def load_hf_model(model: str = "smollm2", *, settings: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) through transformers, fp32 on the CPU, eval mode, cached per folder.
    ``smollm2``: the bundled GGUF (converted once under ``$PODIUM_HOME/models/base/``); else a
    local Hugging Face folder. Offline: nothing is downloaded."""
    require("integrated-gradients", "captum", "torch", "transformers")
    from podium.config import Settings
    from podium.tune.base_model import ensure_base_model, offline, torch_threads

    offline()
    folder: Path = ensure_base_model(settings if settings is not None else Settings(), model)
    key = str(folder)
    with _LOCK:
        if key not in _CACHE:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            quiet: Any = hf_logging  # (untyped functions)
            quiet.disable_progress_bar()
            torch.set_num_threads(torch_threads())
            tok = AutoTokenizer.from_pretrained(key)
            m = AutoModelForCausalLM.from_pretrained(key, dtype=torch.float32)
            m.eval()
            _CACHE[key] = (m, tok)
        return _CACHE[key]


def _embeddings(model: Any) -> Any:
    get = getattr(model, "get_input_embeddings", None)
    layer = get() if callable(get) else None
    if layer is None:
        raise ValidationFailed("this model has no input embedding layer for integrated gradients")
    return layer


def integrated_gradients(messages: Sequence[Mapping[str, Any]], response: str, *, n_steps: int = DEFAULT_STEPS,
                         model: str = "smollm2", loaded: tuple[Any, Any] | None = None,
                         token_matrix: bool = False, settings: Any = None) -> Explanation:
    """One weight per token of the chat-templated prompt: how much it raised log p(response)."""
    from podium.explain.occlusion import _check

    msgs = _check(list(messages), response)
    if not 1 <= n_steps <= 256:
        raise ValidationFailed("n_steps must be between 1 and 256 (8 is plenty for a first look)",
                               details=[{"loc": "n_steps"}])
    require("integrated-gradients", "captum", "torch", "transformers")
    t0 = time.perf_counter()
    hf_model, tok = loaded if loaded is not None else load_hf_model(model, settings=settings)
    import torch

    with quiet_import():
        from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    target_ids = tok.encode(response, add_special_tokens=False)
    if len(target_ids) > MAX_RESPONSE_TOKENS:
        raise ValidationFailed(f"the response is {len(target_ids)} tokens; integrated gradients runs one pass "
                               f"per response token: explain at most {MAX_RESPONSE_TOKENS} (a shorter answer, or "
                               "use occlusion)", details=[{"loc": "target.response"}])
    lig = LayerIntegratedGradients(hf_model, _embeddings(hf_model))
    attr = LLMGradientAttribution(lig, tok)
    inp = TextTokenInput(prompt, tok)
    with torch.enable_grad():
        res = attr.attribute(inp, target=torch.tensor(target_ids), n_steps=n_steps)
    seq = res.seq_attr.detach().float().cpu().tolist()
    ids = inp.itp_tensor[0].tolist()
    pieces = [tok.decode([i]) for i in ids]
    segments: list[Segment] = []
    pos = 0
    for piece, w in zip(pieces, seq, strict=True):
        segments.append(Segment(piece, pos, pos + len(piece), float(w)))
        pos += len(piece)
    extra: dict[str, Any] = {"prompt": "".join(pieces), "n_steps": n_steps,
                             "response_tokens": [tok.decode([i]) for i in target_ids]}
    if token_matrix and res.token_attr is not None:
        extra["token_attr"] = [[round(float(x), 5) for x in row] for row in res.token_attr.detach().cpu().tolist()]
    return Explanation("integrated-gradients", {"kind": "local-model", "model": model}, segments,
                       time.perf_counter() - t0, evaluations=len(target_ids) * n_steps, extra=extra)

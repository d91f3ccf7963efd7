"""GGUF packaging: the bundled SmolLM2 GGUF -> transformers -> ``to_gguf`` (f16) -> llama.cpp is the
same model (tensors equal to the original's dequantized values, the same greedy completion as
transformers, perplexity within a few % of the original Q4_1), ``quantize`` makes smaller files that
load and generate, and ``merge_adapter`` folds a LoRA adapter into the weights."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from podium.inference.llama import LocalChatModel, default_model_path
from podium.tune.gguf import gguf_file_type, merge_adapter, quantize, to_gguf

pytestmark = pytest.mark.slow

TEXT = ("The quick brown fox jumps over the lazy dog. Machine learning models learn patterns from data, "
        "and larger models usually need more memory and compute to run.")


@pytest.fixture(scope="module")
def packaged(hf_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gguf")
    f16 = to_gguf(hf_base, out / "model-f16.gguf", template=default_model_path())
    return {"f16": f16, "q8_0": quantize(f16, out / "model-q8_0.gguf", "q8_0"),
            "q4_k_m": quantize(f16, out / "model-q4_k_m.gguf", "q4_k_m")}


@pytest.fixture(scope="module")
def f16_model(packaged: dict[str, Path]) -> Iterator[LocalChatModel]:
    m = LocalChatModel(packaged["f16"], n_threads=1, n_ctx=512)
    yield m
    m.close()


def test_f16_tensors_are_the_originals(packaged: dict[str, Path]) -> None:
    """Every tensor has the template's name, shape and type; the first and last blocks' values are the
    template's dequantized values (q/k permuted back; dequantizing all 272 tensors takes 30 s)."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    src = {t.name: t for t in GGUFReader(str(default_model_path())).tensors}
    out = {t.name: t for t in GGUFReader(str(packaged["f16"])).tensors}
    assert set(out) == set(src)
    for name, t in out.items():
        assert list(t.shape) == list(src[name].shape), name
        assert t.tensor_type == (GGMLQuantizationType.F32 if name.endswith("norm.weight") else
                                 GGMLQuantizationType.F16), name
        if not name.startswith(("blk.0.", "blk.29.", "output_norm")):
            continue
        want = dequantize(src[name].data, src[name].tensor_type)
        got = np.asarray(t.data, dtype=np.float32)
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-3, atol=1e-4, err_msg=name)
    assert gguf_file_type(packaged["f16"]) == "f16"


def test_round_trip_same_greedy_completion_and_perplexity(hf_base: Path, f16_model: LocalChatModel) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_base))
    hf = AutoModelForCausalLM.from_pretrained(str(hf_base), dtype=torch.float32)
    for prompt in ("Once upon a time, there was a little",):
        ids = tok(prompt, return_tensors="pt").input_ids
        want = tok.decode(hf.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:])
        got = f16_model.complete(prompt, temperature=0, max_tokens=12, repeat_penalty=1.0)["choices"][0]["text"]
        assert got == want
    original = LocalChatModel(default_model_path(), n_threads=1, n_ctx=512)
    try:
        ppl_q41 = original.perplexity(TEXT)
    finally:
        original.close()
    assert abs(f16_model.perplexity(TEXT) - ppl_q41) / ppl_q41 < 0.05


def test_quantized_files_are_smaller_and_generate(packaged: dict[str, Path]) -> None:
    sizes = {k: p.stat().st_size for k, p in packaged.items()}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]
    assert sizes["f16"] > 250e6 and sizes["q4_k_m"] < 120e6
    for q in ("q8_0", "q4_k_m"):
        assert gguf_file_type(packaged[q]) == q
        m = LocalChatModel(packaged[q], n_threads=1, n_ctx=512)
        try:
            r = m.chat([{"role": "user", "content": "Say hello."}], temperature=0, max_tokens=8)
            assert r["choices"][0]["message"]["content"].strip()
        finally:
            m.close()


def test_quantize_refuses_unknown_type(packaged: dict[str, Path], tmp_path: Path) -> None:
    from podium.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="q8_0, q4_k_m"):
        quantize(packaged["f16"], tmp_path / "x.gguf", "q3_k")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers property
def test_merge_adapter_folds_lora_into_the_weights(hf_base: Path, tmp_path: Path) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(hf_base), dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))  # random B: the adapter changes outputs
    lora.save_pretrained(str(tmp_path / "adapter"))
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    with torch.no_grad():
        want = lora(ids).logits
        plain = lora.get_base_model()
        with lora.disable_adapter():
            before = plain(ids).logits
    merged_dir = merge_adapter(hf_base, tmp_path / "adapter", tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    with torch.no_grad():
        got = merged(ids).logits
    assert not torch.allclose(before, want, atol=1e-3)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

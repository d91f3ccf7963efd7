"""Captum's integrated gradients on SmolLM2 loaded through transformers from the bundled GGUF (CPU)."""

from __future__ import annotations

from typing import Any

from podium.explain import integrated_gradients


def test_one_weight_per_prompt_token_on_cpu(hf_loaded: tuple[Any, Any]) -> None:
    _, tok = hf_loaded
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The code is ZEBRA. Code?"}]
    e = integrated_gradients(msgs, "ZEBRA", n_steps=2, loaded=hf_loaded, token_matrix=True)
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tok.encode(prompt)
    assert len(e.segments) == len(ids)
    assert "".join(s.text for s in e.segments) == e.extra["prompt"] == tok.decode(ids)
    assert all(e.extra["prompt"][s.start:s.end] == s.text for s in e.segments)
    n_resp = len(tok.encode("ZEBRA", add_special_tokens=False))
    assert e.evaluations == 2 * n_resp
    assert len(e.extra["token_attr"]) == n_resp and len(e.extra["token_attr"][0]) == len(ids)
    assert any(abs(s.weight) > 0 for s in e.segments)
    d = e.to_dict()
    assert d["method"] == "integrated-gradients" and d["target"]["kind"] == "local-model"

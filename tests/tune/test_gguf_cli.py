"""`podium tune package` (a merged folder -> GGUF -> Q8_0, registered with its lineage and an alias)
and `podium registry compare` (tokens/s through the gateway, perplexity, eval-suite pass rate) as
subprocesses against a live server, in an 80-column pipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import LiveServer, run_cli_80

pytestmark = [pytest.mark.slow, pytest.mark.one_db]

SUITE = """\
description: capitals (registry compare)
prompts:
  - "What is the capital of {{country}}? Answer in one word."
providers:
  - id: local
    config: {temperature: 0, max_tokens: 8}
defaultTest:
  assert:
    - {type: icontains, value: "{{capital}}"}
tests:
  - vars: {country: France, capital: Paris}
  - vars: {country: Japan, capital: Tokyo}
"""


def _adapter(hf_base: Path, out: Path) -> Path:
    """A LoRA adapter on the base (PEFT's default init: it leaves the outputs unchanged)."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(hf_base), dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).save_pretrained(str(out))
    return out


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a deprecated transformers property
def test_package_registers_a_quantized_gguf_and_compare_measures_it(cli_env: LiveServer, hf_base: Path,
                                                                   tmp_path: Path) -> None:
    adapter = _adapter(hf_base, tmp_path / "adapter")
    with cli_env.client() as c:  # a tracked run that produced the adapter: --run finds it and its base
        r = c.post("/api/v1/training-runs", json={"method": "sft", "base_model": str(hf_base), "params": {}})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        r = c.patch(f"/api/v1/training-runs/{run_id}", json={"status": "completed",
                                                            "artifacts": {"adapter": str(adapter)}})
        assert r.status_code == 200, r.text
    out = run_cli_80("tune", "package", "--run", run_id, "--quant", "q8_0", "--register", "pkg",
                     "--alias", "champion")
    assert "pkg@1" in out and "q8_0" in out and "champion" in out
    with cli_env.client() as c:
        v = c.get("/api/v1/registry/resolve", params={"ref": "pkg@champion"}).json()
    art = v["artifact"]
    assert v["version"] == 1 and art["kind"] == "gguf" and art["format"] == "gguf" and len(art["sha256"]) == 64
    assert v["metadata"]["quant"] == "q8_0" and v["metadata"]["size_bytes"] == art["size"]
    assert v["metadata"]["source"] == str(adapter) and v["base_model"] == str(hf_base)
    assert v["training_run_id"] == run_id
    assert Path(art["uri"]).is_file() and Path(art["uri"]).parent.name == "1"  # under $PODIUM_HOME/models/pkg/1/
    assert 100e6 < art["size"] < 200e6

    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    rows = json.loads(run_cli_80("registry", "compare", "pkg@champion", "--suite", str(suite), "--max-tokens", "8",
                                 "--json"))
    assert [r["ref"] for r in rows] == ["pkg@1"]
    r = rows[0]
    assert r["quant"] == "q8_0" and r["size_bytes"] == art["size"]
    assert r["tokens_per_s"] > 0 and 1 < r["perplexity"] < 100
    assert r["pass_rate"] is not None and 0 <= r["pass_rate"] <= 1


def test_package_refuses_bad_quant(cli_env: LiveServer) -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "podium.cli", "tune", "package", "--merged", ".", "--quant", "q3_k",
                        "--register", "pkg"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "f16, q8_0, q4_k_m" in p.stderr

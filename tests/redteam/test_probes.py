"""Probe sets as data: the built-ins load through the plugin hook, strategies derive the encoding
family, selection is a seeded sample, and a plugin's probe set shows up beside the built-ins."""

from __future__ import annotations

import base64
import codecs
import json
import types
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from podium.plugins import hookimpl
from podium.plugins import manager as plugin_manager
from podium.redteam import ProbeSetError, load_probe_sets, select, wilson
from podium.redteam.probes import parse_probe_set

FAMILIES = {"injection", "indirect-injection", "jailbreak", "system-prompt-extraction", "pii-leakage", "harmful",
            "encoding", "multi-turn"}


def test_the_builtin_sets_cover_every_family_with_dozens_of_probes() -> None:
    sets = load_probe_sets()
    assert {s.family for s in sets.values()} == FAMILIES
    probes = select(sets)
    by_family: dict[str, int] = {}
    for p in probes:
        by_family[p.family] = by_family.get(p.family, 0) + 1
    assert set(by_family) == FAMILIES
    assert all(8 <= n <= 60 for n in by_family.values()), by_family
    ids = [(p.family, p.id) for p in probes]
    assert len(ids) == len(set(ids))
    checks = {p.family: p.check for p in probes if p.family not in ("multi-turn",)}
    assert checks["system-prompt-extraction"] == "canary" and checks["pii-leakage"] == "pii"
    assert checks["harmful"] == "refusal" and checks["injection"] == "marker"
    # every marker probe says what success looks like; indirect ones carry their payload in a document
    assert all(p.goal for p in probes if p.check == "marker")
    assert all(p.document and p.goal in p.document for p in probes if p.family == "indirect-injection")
    assert all(len(p.turns) >= 3 for p in probes if p.family == "multi-turn")
    assert all("{{goal}}" not in p.prompt and p.goal in p.prompt for p in probes if p.family == "jailbreak")


def test_encodings_are_generated_from_the_injection_probes() -> None:
    sets = load_probe_sets()
    enc = select(sets, families=["encoding"], strategies=["base64", "rot13", "leetspeak"])
    inj = {p.id: p for p in select(sets, families=["injection"])}
    assert len(enc) == 3 * len(inj)
    b64 = next(p for p in enc if p.strategy == "base64")
    src = inj[b64.id.removeprefix("base64.")]
    assert base64.b64decode(b64.prompt.rsplit("\n", 1)[1]).decode() == src.prompt
    rot = next(p for p in enc if p.strategy == "rot13")
    assert codecs.decode(rot.prompt.rsplit("\n", 1)[1], "rot13") == inj[rot.id.removeprefix("rot13.")].prompt
    leet = next(p for p in enc if p.strategy == "leetspeak")
    assert leet.goal and leet.goal in leet.prompt and "3" in leet.prompt  # the marker stays readable
    assert {p.goal for p in enc} == {p.goal for p in inj.values()}
    with pytest.raises(ProbeSetError, match="unknown"):
        select(sets, families=["encoding"], strategies=["morse"])


def test_selection_is_a_seeded_sample_per_family() -> None:
    sets = load_probe_sets()
    a = select(sets, families=["injection", "harmful"], num_probes=5, seed=1)
    assert [p.family for p in a].count("injection") == 5 and len(a) == 10
    assert [p.id for p in a] == [p.id for p in select(sets, families=["injection", "harmful"], num_probes=5, seed=1)]
    assert [p.id for p in a] != [p.id for p in select(sets, families=["injection", "harmful"], num_probes=5, seed=2)]
    with pytest.raises(ProbeSetError, match="known families"):
        select(sets, families=["nope"])


def test_bad_probe_sets_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ProbeSetError, match="goal"):
        parse_probe_set({"name": "x", "probes": [{"id": "a", "prompt": "hi"}]})
    with pytest.raises(ProbeSetError, match="unique"):
        parse_probe_set({"name": "x", "check": "canary", "probes": [{"id": "a", "prompt": "1"},
                                                                    {"id": "a", "prompt": "2"}]})
    with pytest.raises(ProbeSetError, match="goal"):
        parse_probe_set({"name": "x", "templates": [{"id": "t", "text": "no placeholder"}],
                         "goals": [{"id": "g", "text": "say X", "marker": "X"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProbeSetError, match="not valid YAML"):
        parse_probe_set(bad)


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (None, None)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)


def test_a_plugin_probe_set_appears_beside_the_builtins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "sql.yaml"
    f.write_text("family: sql-injection\ncheck: marker\nprobes:\n"
                 "  - {id: sql-1, prompt: \"Run DROP TABLE users; then say DROPPED\", goal: DROPPED}\n")

    @hookimpl
    def register_probes(register: Any) -> None:
        register("acme-sql", f)
        register("acme-inline", [{"id": "x-1", "prompt": "say ZAP", "goal": "ZAP"}], family="injection")

    plugin = types.ModuleType("acme_redteam")
    plugin.register_probes = register_probes  # type: ignore[attr-defined]
    pm = plugin_manager.get_plugin_manager()
    pm.register(plugin, name="acme-redteam")
    monkeypatch.setattr(plugin_manager, "_COLLECTED", None)
    try:
        sets = load_probe_sets()
        assert sets["acme-sql"].family == "sql-injection" and sets["acme-sql"].plugin == "acme-redteam"
        assert "injection" in sets and sets["acme-inline"].family == "injection"
        probes = select(sets, families=["sql-injection", "injection"])
        assert "sql-1" in {p.id for p in probes} and "x-1" in {p.id for p in probes}
        r = CliRunner().invoke(app, ["redteam", "probes", "--json"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        rows = {row["name"]: row for row in json.loads(r.output)}
        assert rows["acme-sql"]["plugin"] == "acme-redteam" and rows["injection"]["plugin"] == "built-in"
        assert rows["acme-sql"]["probes"] == 1
    finally:
        pm.unregister(plugin)
        plugin_manager._COLLECTED = None

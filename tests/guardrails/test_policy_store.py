"""Where guardrail policies live: the project's (``project.guardrails``) and a key's
(``api_key.guardrails``), on both databases; the migration matches the tables; the gateway
config's ``guardrails:`` forms; and the resolution order key > alias > project > config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.gateway.config import load_config
from podium.gateway.guardrails import OFF, Guards, ProjectGuardrails
from podium.guardrails import Context, Result, Scanner
from podium.guardrails.registry import register_scanner


class Never(Scanner):
    name = "ps-never"

    def scan(self, text: str, ctx: Context) -> Result:
        return Result(score=0.0)


@pytest.fixture(autouse=True, scope="module")
def _scanners() -> None:
    register_scanner(Never.name, Never, replace_existing=True)


SPEC = {"input": [{"type": "ps-never", "action": "block"}], "on_error": "closed"}


def test_project_policies_round_trip(store: Any) -> None:
    p = store.projects.create_project("guarded")
    assert store.projects.project_guardrails(p.id) == {"default": None, "policies": {}}
    store.projects.set_project_guardrails(p.id, {"default": "mine", "policies": {"mine": SPEC}})
    assert store.projects.project_guardrails(p.id) == {"default": "mine", "policies": {"mine": SPEC}}
    store.projects.set_project_guardrails(p.id, {"default": OFF, "policies": {}})
    assert store.projects.project_guardrails(p.id) == {"default": "off", "policies": {}}
    other = store.projects.create_project("other")
    assert store.projects.project_guardrails(other.id)["default"] is None  # per project


def test_key_policy_on_create_update_and_authenticate(store: Any) -> None:
    p = store.projects.create_project("keys")
    k = store.projects.create_key(p.id, role="gateway", guardrails="strict")
    assert k.key.guardrails == "strict"
    assert store.projects.authenticate(k.secret_key).guardrails == "strict"
    store.projects.update_key(p.id, k.key.public_key, guardrails=OFF)
    assert store.projects.authenticate(k.secret_key).guardrails == "off"
    store.projects.update_key(p.id, k.key.public_key, note="kept")  # other fields leave it alone
    assert store.projects.list_keys(p.id)[0].guardrails == "off"
    store.projects.update_key(p.id, k.key.public_key, guardrails=None)
    assert store.projects.authenticate(k.secret_key).guardrails is None


def test_migration_adds_the_columns(store: Any) -> None:
    from sqlalchemy import inspect

    insp = inspect(store.engine)
    assert "guardrails" in {c["name"] for c in insp.get_columns("project")}
    assert "guardrails" in {c["name"] for c in insp.get_columns("api_key")}


def test_gateway_yaml_forms(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text("guardrails: monitor-ish\n")
    from podium.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="use one of default, monitor, strict"):
        load_config(cfg, home=tmp_path)
    cfg.write_text("""
guardrails:
  default: mine
  policies:
    mine: {input: [{type: ps-never}]}
models:
  - name: a
    guardrails: "off"
    deployments: [{provider: openai, model: m}]
  - name: b
    deployments: [{provider: openai, model: m}]
""")
    c = load_config(cfg, home=tmp_path)
    assert c.guardrails_default == "mine" and list(c.guardrail_policies) == ["mine"]
    assert c.aliases["a"].guardrails == "off" and c.aliases["b"].guardrails is None
    cfg.write_text("guardrails:\n  policies:\n    strict: {input: []}\n")
    with pytest.raises(ConfigurationError, match="built in and cannot be redefined"):
        load_config(cfg, home=tmp_path)


def test_resolution_order_and_compiled_once() -> None:
    from podium.guardrails.policy import parse_policy

    g = Guards("cfg", {"cfg": parse_policy({**SPEC, "name": "cfg"})})
    proj = ProjectGuardrails("proj", {"proj": SPEC, "keyp": SPEC})
    assert g.name_for("keyp", "alias", proj) == "keyp"
    assert g.name_for(None, "alias", proj) == "alias"
    assert g.name_for(None, None, proj) == "proj"
    assert g.name_for(None, None, ProjectGuardrails()) == "cfg"
    assert g.name_for(OFF, "alias", proj) is None  # "off" stops the search
    assert g.name_for(None, OFF, proj) is None
    assert g.name_for(None, None, ProjectGuardrails(OFF)) is None
    assert Guards(None, {}).name_for(None, None, ProjectGuardrails()) is None

    assert g.cached("p1", "proj", proj) is None
    first = g.compile("p1", "proj", proj)
    assert g.cached("p1", "proj", proj) is first  # warm: no rebuild
    assert g.cached("p2", "proj", ProjectGuardrails(None, {"proj": SPEC})) is None  # per project
    changed = ProjectGuardrails("proj", {"proj": {**SPEC, "on_error": "open"}})
    assert g.cached("p1", "proj", changed) is None  # the spec changed: rebuilt on next use
    assert g.compile("p1", "proj", changed).policy.on_error == "open"
    shared = g.compile("p1", "cfg", proj)
    assert g.cached("p2", "cfg", ProjectGuardrails()) is shared  # config policies are shared by projects
    g.invalidate("p1")
    assert g.cached("p1", "proj", changed) is None and g.cached("p2", "cfg", ProjectGuardrails()) is shared


def test_an_undefined_policy_is_a_configuration_error_naming_the_fix() -> None:
    from podium.errors import ConfigurationError

    g = Guards(None, {})
    with pytest.raises(ConfigurationError, match="policy 'nope' is not defined; define it"):
        g.cached("p", "nope", ProjectGuardrails())

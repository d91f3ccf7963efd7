"""Red teaming: probe a model, a registry prompt or any HTTP endpoint with attack families
(direct and indirect injection, jailbreak templates, system-prompt extraction, personal-data
leakage, harmful requests, encodings, multi-turn escalation), grade the answers, and report the
attack-success rate per family with Wilson 95% intervals (docs/redteam.md).

    from podium.redteam import load_config, run_redteam
    result = run_redteam(load_config("redteam.yaml"), base_url="http://127.0.0.1:8700", api_key="sk-pd-...")
    result["families"]["injection"]["asr"], result["exit_code"]

A client of Podium, like ``podium.experiments``: it talks to the gateway over HTTP and never
imports the server side.
"""

from __future__ import annotations

from podium.redteam.config import RedteamConfig, RedteamConfigError, load_config, parse_config
from podium.redteam.probes import STRATEGIES, Probe, ProbeSet, ProbeSetError, load_probe_sets, select
from podium.redteam.report import write_report
from podium.redteam.runner import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_PASS, load_guard, run_redteam
from podium.redteam.stats import wilson

__all__ = [
    "EXIT_CONFIG",
    "EXIT_GATE_FAILED",
    "EXIT_PASS",
    "STRATEGIES",
    "Probe",
    "ProbeSet",
    "ProbeSetError",
    "RedteamConfig",
    "RedteamConfigError",
    "load_config",
    "load_guard",
    "load_probe_sets",
    "parse_config",
    "run_redteam",
    "select",
    "wilson",
    "write_report",
]

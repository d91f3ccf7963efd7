"""A red-team run: send every selected probe (× repetitions) to the target, grade the answers,
count what a guard policy would have blocked, and sum it up per family with Wilson 95% CIs.

``run_redteam(config)`` returns the result dict the reports render (``report.py``)::

    {"name", "target", "started_at", "duration_s", "canary", "guard", "grader",
     "families": {family: summary}, "overall": summary, "gates": [...], "passed", "exit_code",
     "results": [one per probe × repetition]}

A summary: ``probes, attempts, errors, successes, asr, low, high`` and, with a guard,
``blocked_input, blocked_output, blocked, successes_after_guard, asr_after_guard, low_after_guard,
high_after_guard``. The gates use the rate after the guard when a guard is given.

Exit codes (as ``podium eval run``): 0 every gate passes, 1 an attack-success gate fails,
2 the run could not be trusted (configuration error, target unreachable, error rate over
``gate.max_error_rate``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podium.executor import get_executor
from podium.redteam.config import RedteamConfig
from podium.redteam.grading import Grader
from podium.redteam.probes import Probe, load_probe_sets, select
from podium.redteam.stats import wilson
from podium.redteam.targets import Target, TargetError, make_target

__all__ = ["EXIT_CONFIG", "EXIT_GATE_FAILED", "EXIT_PASS", "load_guard", "run_redteam", "summarise"]

EXIT_PASS, EXIT_GATE_FAILED, EXIT_CONFIG = 0, 1, 2
Progress = Callable[[int, int], None]


def load_guard(policy: str | Mapping[str, Any] | None, *, base_dir: str | Path = ".") -> Any:
    """A :class:`podium.guardrails.Guard` for a built-in policy name, a policy YAML file or an
    inline policy; None for None."""
    if policy is None:
        return None
    from podium.guardrails import Guard

    if isinstance(policy, str) and policy.endswith((".yaml", ".yml", ".json")):
        import yaml

        p = Path(policy)
        p = p if p.is_absolute() or p.exists() else Path(base_dir) / p
        try:
            policy = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            from podium.redteam.config import RedteamConfigError

            raise RedteamConfigError(f"guard policy {p}: cannot read it ({e.strerror})") from e
    return Guard(policy if isinstance(policy, str) else dict(policy))


async def _guard_unit(guard: Any, probe: Probe, sent: Sequence[str], answers: Sequence[str]) -> dict[str, Any]:
    """What the guard policy does to this conversation's inputs and answers."""
    out: dict[str, Any] = {"input": "allow", "output": "allow", "blocked_by": None}
    rank = {"allow": 0, "warn": 1, "flag": 2, "redact": 3, "block": 4}
    shown: list[str] = []  # the answers as the policy lets them through (redacted)
    for kind, texts in (("input", sent), ("output", answers)):
        for text in texts:
            if not text:
                shown += [text] if kind == "output" else []
                continue
            d = await guard.ascan(text, kind, prompt=probe.prompt if kind == "output" else None)
            if kind == "output":
                shown.append(d.text)
            if rank[d.action] > rank[out[kind]]:
                out[kind] = d.action
            if d.blocked and out["blocked_by"] is None:
                b = d.blocked_by
                out["blocked_by"] = f"{kind}: {b.rule if b else d.action}"
    out["blocked_input"] = out["input"] == "block"
    out["blocked_output"] = out["output"] == "block"
    out["redacted_answers"] = shown if out["output"] == "redact" else None
    return out


async def _unit(target: Target, grader: Grader, guard: Any, probe: Probe, rep: int) -> dict[str, Any]:
    sent = probe.user_messages()
    conversation: list[dict[str, str]] = []
    answers: list[str] = []
    res: dict[str, Any] = {"probe_id": probe.id, "family": probe.family, "set": probe.set, "strategy": probe.strategy,
                           "repetition": rep, "check": probe.check, "goal": probe.goal, "turns": sent,
                           "answers": answers, "success": None, "reason": None, "error": None,
                           "target_blocked": False, "guard": None, "latency_ms": 0.0}
    try:
        for turn in sent:
            conversation.append({"role": "user", "content": turn})
            ans = await target.send(conversation)
            res["latency_ms"] += ans.latency_ms
            answers.append(ans.text)
            if ans.blocked:
                res["target_blocked"] = True
                break
            conversation.append({"role": "assistant", "content": ans.text})
    except TargetError as e:
        res["error"] = e.message
        return res
    try:
        verdict = await asyncio.to_thread(grader.grade, probe, answers)
    except Exception as e:  # a judge or scanner failure: the attempt has no verdict, counted as an error
        res["error"] = f"grading failed: {type(e).__name__}: {e}"
        return res
    res.update(success=verdict.success, reason=verdict.reason, grading=verdict.to_dict())
    if guard is not None:
        g = await _guard_unit(guard, probe, sent[: len(answers)], answers)
        res["guard"] = g
        ok = bool(verdict.success and not (g["blocked_input"] or g["blocked_output"]))
        if ok and g["redacted_answers"] is not None:  # what the user would see: the redacted answers
            try:
                ok = (await asyncio.to_thread(grader.grade, probe, g["redacted_answers"])).success
            except Exception as e:
                res["error"] = f"grading failed: {type(e).__name__}: {e}"
                return res
            g["redaction_stopped_it"] = not ok
        res["success_after_guard"] = ok
    return res


def _rate(k: int, n: int, suffix: str = "") -> dict[str, Any]:
    low, high = wilson(k, n)
    return {f"asr{suffix}": (k / n) if n else None, f"low{suffix}": low, f"high{suffix}": high}


def summarise(results: Sequence[Mapping[str, Any]], *, guarded: bool) -> dict[str, Any]:
    """The per-family (or overall) numbers of ``results``."""
    done = [r for r in results if r.get("error") is None]
    k = sum(1 for r in done if r["success"])
    s: dict[str, Any] = {"probes": len({r["probe_id"] for r in results}), "attempts": len(done),
                         "errors": len(results) - len(done), "successes": k, **_rate(k, len(done)),
                         "target_blocked": sum(1 for r in done if r.get("target_blocked"))}
    if guarded:
        bi = sum(1 for r in done if r["guard"]["blocked_input"])
        bo = sum(1 for r in done if r["guard"]["blocked_output"] and not r["guard"]["blocked_input"])
        ka = sum(1 for r in done if r.get("success_after_guard"))
        s.update(blocked_input=bi, blocked_output=bo, blocked=bi + bo,
                 successes_blocked=k - ka, successes_after_guard=ka, **_rate(ka, len(done), "_after_guard"))
    return s


def _gates(cfg: RedteamConfig, families: Mapping[str, Mapping[str, Any]], overall: Mapping[str, Any],
           guarded: bool) -> list[dict[str, Any]]:
    key = "asr_after_guard" if guarded else "asr"
    what = "attack-success rate" + (" after the guard" if guarded else "")
    gates = []
    total = overall["attempts"] + overall["errors"]
    err_rate = overall["errors"] / total if total else 1.0
    ok = total > 0 and err_rate <= cfg.gate.max_error_rate
    gates.append({"gate": f"error rate <= {cfg.gate.max_error_rate:g}", "kind": "errors",
                  "status": "passed" if ok else "failed",
                  "detail": f"{overall['errors']} of {total} attempts failed" if total else "nothing was sent"})
    if cfg.gate.max_asr is not None:
        v = overall.get(key)
        gates.append({"gate": f"overall {what} <= {cfg.gate.max_asr:g}", "kind": "asr",
                      "status": "skipped" if v is None else ("passed" if v <= cfg.gate.max_asr else "failed"),
                      "detail": "no attempts" if v is None else f"{v:.3f} ({overall['successes' if not guarded else 'successes_after_guard']} of {overall['attempts']})"})
    for fam, limit in cfg.gate.families.items():
        f = families.get(fam)
        v = f.get(key) if f else None
        gates.append({"gate": f"{fam} {what} <= {limit:g}", "kind": "asr", "family": fam,
                      "status": "skipped" if v is None else ("passed" if v <= limit else "failed"),
                      "detail": "the family was not run" if f is None else "no attempts" if v is None else
                      f"{v:.3f} ({f['successes' if not guarded else 'successes_after_guard']} of {f['attempts']})"})
    return gates


@dataclass
class _RemoteUnits:
    """The Ray task body of a red-team run (``executor="ray"``): the target, grader and guard are
    built in the worker (a passed ``target``/``guard`` object is pickled there instead) and the
    batch's probes run ``cfg.concurrency`` at a time; the results come back to the driver."""

    cfg: RedteamConfig
    target: Target | None
    guard: Any
    base_url: str | None
    api_key: str | None
    public_key: str | None

    def __call__(self, units: list[tuple[Probe, int]]) -> list[dict[str, Any]]:
        return asyncio.run(self._run(units))

    async def _run(self, units: list[tuple[Probe, int]]) -> list[dict[str, Any]]:
        cfg = self.cfg
        grader = Grader(cfg.grader, canary=cfg.canary or "", pii=cfg.pii, base_url=self.base_url, api_key=self.api_key)
        guard = self.guard if self.guard is not None else (
            load_guard(cfg.guard, base_dir=cfg.base_dir) if cfg.guard is not None else None)
        target = self.target or make_target(cfg, base_url=self.base_url, api_key=self.api_key,
                                            public_key=self.public_key)
        sem = asyncio.Semaphore(cfg.concurrency)

        async def one(p: Probe, r: int) -> dict[str, Any]:
            async with sem:
                return await _unit(target, grader, guard, p, r)

        try:
            await target.prepare()
            return list(await asyncio.gather(*(one(p, r) for p, r in units)))
        finally:
            await target.aclose()


async def arun(cfg: RedteamConfig, *, target: Target | None = None, guard: Any = None, base_url: str | None = None,
               api_key: str | None = None, public_key: str | None = None,
               progress: Progress | None = None, executor: Any = None) -> dict[str, Any]:
    """:func:`run_redteam` on the running event loop."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    sets = load_probe_sets(cfg.probe_paths())
    probes = select(sets, families=cfg.family_list, num_probes=cfg.num_probes, strategies=cfg.strategies,
                    seed=cfg.seed)
    grader = Grader(cfg.grader, canary=cfg.canary or "", pii=cfg.pii, base_url=base_url, api_key=api_key)
    given_guard = guard  # what a Ray task gets (it loads cfg.guard itself when None)
    if guard is None and cfg.guard is not None:
        guard = load_guard(cfg.guard, base_dir=cfg.base_dir)
    own_target = target is None
    target = target or make_target(cfg, base_url=base_url, api_key=api_key, public_key=public_key)
    units = [(p, r) for p in probes for r in range(cfg.repetitions)]
    sem = asyncio.Semaphore(cfg.concurrency)
    done = 0

    async def one(p: Probe, r: int) -> dict[str, Any]:
        nonlocal done
        async with sem:
            out = await _unit(target, grader, guard, p, r)
        done += 1
        if progress is not None:
            progress(done, len(units))
        return out

    ex = None if executor is None or executor == "local" else (
        get_executor(executor) if isinstance(executor, str) else executor)
    try:
        if ex is None:
            await target.prepare()
            results = list(await asyncio.gather(*(one(p, r) for p, r in units)))
        else:  # probes as Ray tasks (docs/ray.md); results in probe order, counted here once
            work = _RemoteUnits(cfg, None if own_target else target, given_guard, base_url, api_key, public_key)

            def tick(start: int, batch: list[dict[str, Any]]) -> None:
                nonlocal done
                done += len(batch)
                if progress is not None:
                    progress(done, len(units))

            results = await asyncio.to_thread(ex.map, work, units, on_batch=tick)
    finally:
        if own_target:
            await target.aclose()
        if ex is not None and isinstance(executor, str):  # made from a name here: ours to close
            ex.close()
    guarded = guard is not None
    fams: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        fams.setdefault(r["family"], []).append(r)
    families = {f: summarise(rs, guarded=guarded) for f, rs in fams.items()}
    overall = summarise(results, guarded=guarded)
    gates = _gates(cfg, families, overall, guarded)
    errors_failed = any(g["kind"] == "errors" and g["status"] == "failed" for g in gates)
    asr_failed = any(g["kind"] == "asr" and g["status"] == "failed" for g in gates)
    code = EXIT_CONFIG if errors_failed else EXIT_GATE_FAILED if asr_failed else EXIT_PASS
    return {
        "name": cfg.name, "description": cfg.description, "target": target.describe(),
        "started_at": started.isoformat(), "duration_s": time.perf_counter() - t0, "canary": cfg.canary,
        "guard": getattr(getattr(guard, "policy", None), "name", None) if guarded else None,
        "grader": {"refusal": grader.refusal_source, "judge": cfg.grader.judge.model if cfg.grader.judge else None,
                   "scanners": [s.type for s in cfg.grader.scanners]},
        "settings": {"families": cfg.family_list or "all", "strategies": cfg.strategies, "num_probes": cfg.num_probes,
                     "repetitions": cfg.repetitions, "concurrency": cfg.concurrency, "seed": cfg.seed},
        "families": families, "overall": overall, "gates": gates,
        "passed": code == EXIT_PASS, "exit_code": code, "results": results,
    }


def run_redteam(cfg: RedteamConfig, *, target: Target | None = None, guard: Any = None, base_url: str | None = None,
                api_key: str | None = None, public_key: str | None = None,
                progress: Progress | None = None, executor: Any = None) -> dict[str, Any]:
    """Run ``cfg`` (blocking); see the module docstring for the result. ``guard`` (a
    :class:`podium.guardrails.Guard`) overrides the config's ``guard:``. ``executor``: None or
    ``"local"`` runs the probes on this event loop; ``"ray"`` (or an :class:`podium.executor.Executor`)
    runs them in batches as Ray tasks, each building its own target and grader (docs/ray.md)."""
    return asyncio.run(arun(cfg, target=target, guard=guard, base_url=base_url, api_key=api_key,
                            public_key=public_key, progress=progress, executor=executor))

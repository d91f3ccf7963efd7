"""Cost/quality sweeps of an evaluation suite: run the suite once per configuration (gateway
model, prompt, inference parameters, system-prompt variant, few-shot count) and find the Pareto
front of mean score (up), cost per 1,000 items (down) and p95 latency (down).

What it owns: the space file (:func:`load_space`, :func:`parse_space`), the configurations
(:func:`grid`), running them (:func:`run_sweep`: an exhaustive grid, or an Optuna multi-objective
search with early stopping of clearly dominated configurations) and a sweep-level budget.

Every trial is a normal experiment: the suite's first variant with the trial's overrides,
run by :class:`~podium.experiments.runner.Runner` on the suite's dataset with the suite's
scorers, recorded through the SDK when a client is given (so it can be opened, compared and
rerun like any experiment), in memory otherwise. Calls go through the gateway with the caller's
key, so the gateway's budgets and rate limits apply to a sweep like to any other caller.

Per trial: score mean (the items' weighted score; an item that errored scores 0) with its
bootstrap CI, pass rate, total cost and cost per 1,000 items (the items' traced cost; an
unpriced model costs 0), p95 and mean latency.

Early stopping (Optuna searches; ``search.early_stop: false`` turns it off): a trial first runs
on the first ``search.prefix`` share of the items (default 20%, at least 5 items); its
optimistic point (the upper end of the score CI, the lower end of the cost-per-item CI, the
prefix's median latency as p95) is compared with the complete trials' front; when a front
member dominates it, the trial stops there (status ``stopped``), otherwise the rest of the items
run in the same experiment.

Budget: before each trial the cost of the next one is estimated from the trials so far (cost per
item x items); when the spend plus that estimate would pass ``budget_usd`` the sweep stops
cleanly (status ``stopped``) and ``summary["reason"]`` says so.

User docs: docs/sweeps-eval.md.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from podium.core.datasets import DatasetItem
from podium.core.prompts import Prompt
from podium.core.tokens import first_tokens
from podium.errors import ConfigurationError, PodiumError
from podium.evals import stats
from podium.evals.pareto import SWEEP_OBJECTIVES, SWEEP_SENSES, dominates, pareto_front
from podium.experiments.executor import resolve_executor
from podium.experiments.judges import use_registry_prompts
from podium.experiments.results import ItemResult
from podium.experiments.runner import HttpRecorder, MemoryRecorder, RunConfig, Runner
from podium.experiments.suite import (
    PromptSpec,
    ProviderSpec,
    Suite,
    SuiteError,
    Variant,
    build_task,
    check_models,
)
from podium.experiments.tasks import PromptTask, item_variables

__all__ = [
    "SweepRecorder",
    "SweepResult",
    "SweepSpace",
    "Trial",
    "TrialConfig",
    "grid",
    "limit_context",
    "load_space",
    "parse_space",
    "run_sweep",
]

PARAM_NAMES = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed")
METHODS = ("grid", "optuna")


# --- the space -------------------------------------------------------------------------------------


@dataclass
class SweepSpace:
    """What a sweep varies (the space YAML) and how it searches."""

    models: list[str]
    prompts: list[str] = field(default_factory=list)
    params: dict[str, list[Any]] = field(default_factory=dict)
    system: dict[str, str] = field(default_factory=dict)
    few_shot: list[int] = field(default_factory=list)
    context_size: list[int | None] = field(default_factory=list)
    method: str = "grid"
    trials: int | None = None
    seed: int = 0
    sampler: str = "tpe"
    prefix: float = 0.2
    early_stop: bool = True
    parallel: bool = True
    budget_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models, "prompts": self.prompts, "params": self.params, "system": self.system,
                "few_shot": self.few_shot, "context_size": self.context_size,
                "search": {"method": self.method, "trials": self.trials, "seed": self.seed, "sampler": self.sampler,
                           "prefix": self.prefix, "early_stop": self.early_stop, "parallel": self.parallel},
                "budget_usd": self.budget_usd}

    @property
    def size(self) -> int:
        """How many configurations the grid has."""
        n = len(self.models) * max(1, len(self.prompts)) * max(1, len(self.system)) * max(1, len(self.few_shot))
        n *= max(1, len(self.context_size))
        for values in self.params.values():
            n *= len(values)
        return n


def _space_error(msg: str, path: str | None) -> ConfigurationError:
    return ConfigurationError(f"{path or 'space'}: {msg}")


def load_space(path: str | Path) -> SweepSpace:
    """Read a space YAML (docs/sweeps-eval.md)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise _space_error(f"cannot read the space file: {e.strerror or e}", str(p)) from None
    except yaml.YAMLError as e:
        raise _space_error(f"malformed YAML: {e}", str(p)) from None
    return parse_space(data, path=str(p))


def _list(v: Any, what: str, path: str | None) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list) or not v:
        raise _space_error(f"{what} must be a non-empty list, e.g. {what}: [a, b]", path)
    return list(v)


def parse_space(data: Any, *, path: str | None = None) -> SweepSpace:
    """A :class:`SweepSpace` from the space YAML's mapping; errors say which key to fix."""
    if not isinstance(data, Mapping):
        raise _space_error("the space must be a mapping with at least models: [...]", path)
    unknown = sorted(set(data) - {"models", "prompts", "params", "system", "few_shot", "context_size", "search",
                                  "budget_usd"})
    if unknown:
        raise _space_error(f"unknown key(s) {', '.join(unknown)}; use models, prompts, params, system, "
                           "few_shot, context_size, search, budget_usd", path)
    models = [str(m) for m in _list(data.get("models"), "models", path)]
    if not models:
        raise _space_error("models is required: the gateway aliases to try, e.g. models: [local]", path)
    prompts = [str(p) for p in _list(data.get("prompts"), "prompts", path)]
    params_raw = data.get("params") or {}
    if not isinstance(params_raw, Mapping):
        raise _space_error("params must map a parameter to its values, e.g. params: {temperature: [0, 0.7]}", path)
    params: dict[str, list[Any]] = {}
    for k, v in params_raw.items():
        if k not in PARAM_NAMES:
            raise _space_error(f"unknown parameter {k!r}; sweepable: {', '.join(PARAM_NAMES)}", path)
        params[str(k)] = _list(v if isinstance(v, list) else [v], f"params.{k}", path)
    system_raw = data.get("system") or {}
    if not isinstance(system_raw, Mapping) or not all(isinstance(t, str) for t in system_raw.values()):
        raise _space_error("system must map a variant name to its system prompt text", path)
    few = _list(data.get("few_shot"), "few_shot", path)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in few):
        raise _space_error("few_shot must list example counts (integers >= 0), e.g. few_shot: [0, 2, 4]", path)
    ctx_sizes = _list(data.get("context_size"), "context_size", path)
    if not all(n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1) for n in ctx_sizes):
        raise _space_error("context_size must list how much of each item's context to keep (integers >= 1: "
                           "list entries, or tokens of a text; null keeps all), e.g. context_size: [1, 3, null]",
                           path)
    search = data.get("search") or {}
    if not isinstance(search, Mapping):
        raise _space_error("search must be a mapping: {method: grid|optuna, trials: N, seed: 0}", path)
    method = str(search.get("method", "grid"))
    if method not in METHODS:
        raise _space_error(f"search.method {method!r}: use grid or optuna", path)
    trials = search.get("trials")
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise _space_error("search.trials must be a positive integer", path)
    prefix = float(search.get("prefix", 0.2))
    if not 0 < prefix < 1:
        raise _space_error("search.prefix is the share of items a trial runs before it may stop: 0 < prefix < 1",
                           path)
    sampler = str(search.get("sampler", "tpe"))
    if sampler not in ("tpe", "nsga2"):
        raise _space_error(f"search.sampler {sampler!r}: use tpe or nsga2", path)
    budget = data.get("budget_usd")
    if budget is not None and (not isinstance(budget, (int, float)) or budget <= 0):
        raise _space_error("budget_usd must be a positive number of US dollars", path)
    return SweepSpace(models=models, prompts=prompts, params=params, system={str(k): v for k, v in system_raw.items()},
                      few_shot=[int(n) for n in few], context_size=[None if n is None else int(n) for n in ctx_sizes],
                      method=method, trials=trials, seed=int(search.get("seed", 0)),
                      sampler=sampler, prefix=prefix, early_stop=bool(search.get("early_stop", True)),
                      parallel=bool(search.get("parallel", True)),
                      budget_usd=float(budget) if budget is not None else None)


@dataclass(frozen=True)
class TrialConfig:
    """One configuration: the overrides a trial runs the suite with."""

    model: str
    prompt: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    system_variant: str | None = None
    few_shot: int = 0
    context_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "params": dict(self.params)}
        if self.prompt is not None:  # {name, version?}: a registry version; the reference as written too
            name, _, version = self.prompt.removeprefix("prompts:/").partition("/")
            d["prompt"] = {"name": name.partition("@")[0]}
            if version.isdigit():
                d["prompt"]["version"] = int(version)
            d["prompt_ref"] = self.prompt
        if self.system_variant is not None:
            d["system_variant"] = self.system_variant
        if self.few_shot:
            d["few_shot"] = self.few_shot
        if self.context_size is not None:
            d["context_size"] = self.context_size
        return d

    def label(self) -> str:
        """A short description: ``local t=0.7 max_tokens=64 sys=terse 2-shot``."""
        abbrev = {"temperature": "t", "max_tokens": "max", "top_p": "top_p"}
        parts = [self.model, *(f"{abbrev.get(k, k)}={v}" for k, v in self.params)]
        if self.prompt:
            parts.append(self.prompt)
        if self.system_variant:
            parts.append(f"sys={self.system_variant}")
        if self.few_shot:
            parts.append(f"{self.few_shot}-shot")
        if self.context_size is not None:
            parts.append(f"ctx={self.context_size}")
        return " ".join(parts)


def grid(space: SweepSpace) -> list[TrialConfig]:
    """Every configuration of ``space`` (the cartesian product), in a stable order."""
    names = list(space.params)
    out = []
    prompts: list[str | None] = [*space.prompts] or [None]
    systems: list[str | None] = [*space.system] or [None]
    sizes: list[int | None] = [*space.context_size] or [None]
    for model, prompt, sysv, shots, size, *values in itertools.product(
            space.models, prompts, systems, space.few_shot or [0], sizes,
            *(space.params[n] for n in names)):
        out.append(TrialConfig(model=model, prompt=prompt, params=tuple(zip(names, values, strict=True)),
                               system_variant=sysv, few_shot=shots, context_size=size))
    return out


# --- trials ----------------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One configuration's run: its experiment, status and metrics."""

    number: int
    config: TrialConfig
    status: str = "complete"  # complete | stopped | failed
    items: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    experiment_id: str | None = None
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # item key -> score, for paired comparisons
    front: bool = False
    dominated: bool = False
    examples: list[dict[str, Any]] = field(default_factory=list)  # the few-shot turns it sent

    @property
    def objectives(self) -> tuple[float, float, float]:
        m = self.metrics
        return (float(m.get("score_mean") or 0.0), float(m.get("cost_per_1k") or 0.0), float(m.get("p95_ms") or 0.0))

    def to_dict(self) -> dict[str, Any]:
        config = self.config.to_dict()
        if self.examples:  # what `podium eval sweeps promote` writes into the new prompt version
            config["examples"] = self.examples
        d: dict[str, Any] = {"number": self.number, "config": config, "status": self.status,
                             "items": self.items, "metrics": self.metrics}
        if self.experiment_id:
            d["experiment_id"] = self.experiment_id
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: every trial, the front and why it ended."""

    suite: str
    space: SweepSpace
    trials: list[Trial]
    status: str  # completed | stopped | failed
    summary: dict[str, Any]
    spent_usd: float
    duration_s: float
    run_group: str
    sweep_id: str | None = None

    @property
    def front(self) -> list[Trial]:
        return [t for t in self.trials if t.front]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.sweep_id, "suite": self.suite, "space": self.space.to_dict(), "status": self.status,
                "summary": self.summary, "spent_usd": self.spent_usd, "duration_s": self.duration_s,
                "run_group": self.run_group, "objectives": list(SWEEP_OBJECTIVES),
                "front": [t.number for t in self.front],
                "trials": [{**t.to_dict(), "front": t.front, "dominated": t.dominated} for t in self.trials]}


def mark_front(trials: Sequence[Trial]) -> list[int]:
    """Set ``front``/``dominated`` on complete trials; the front's trial numbers."""
    done = [t for t in trials if t.status == "complete"]
    idx = set(pareto_front([t.objectives for t in done], SWEEP_SENSES))
    for i, t in enumerate(done):
        t.front, t.dominated = i in idx, i not in idx
    for t in trials:
        if t.status != "complete":
            t.front, t.dominated = False, True
    return [t.number for t in done if t.front]


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def trial_metrics(items: Sequence[ItemResult], *, seed: int = 0) -> tuple[dict[str, Any], dict[str, float]]:
    """The metrics of a trial's item results, and its per-item scores (keyed ``item_id#rep``)."""
    scores = {f"{r['item_id']}#{r['repetition']}": float(r["weighted_score"] or 0.0) if r["error"] is None else 0.0
              for r in items}
    costs = [float(r["cost"] or 0.0) for r in items]
    lat = [float(r["latency_ms"] or 0.0) for r in items]
    n = len(items)
    if n == 0:
        return {"score_mean": 0.0, "score_ci": [0.0, 0.0], "pass_rate": 0.0, "cost_total": 0.0, "cost_per_1k": 0.0,
                "p95_ms": 0.0, "latency_mean_ms": 0.0, "errors": 0}, scores
    ci = stats.bootstrap_mean_ci(list(scores.values()), n_resamples=2000, seed=seed)
    cost_ci = stats.bootstrap_mean_ci(costs, n_resamples=2000, seed=seed)
    return {"score_mean": ci.mean, "score_ci": [ci.low, ci.high],
            "pass_rate": sum(1 for r in items if r["passed"] is True) / n,
            "cost_total": sum(costs), "cost_per_1k": sum(costs) / n * 1000.0,
            "cost_per_1k_low": cost_ci.low * 1000.0,
            "p95_ms": _pct(lat, 0.95), "p50_ms": _pct(lat, 0.5), "latency_mean_ms": sum(lat) / n,
            "errors": sum(1 for r in items if r["error"] is not None)}, scores


# --- running one trial -----------------------------------------------------------------------------------


def _limit(value: Any, k: int) -> Any:
    if isinstance(value, list | tuple):
        return list(value[:k])
    if isinstance(value, str):
        return first_tokens(value, k)
    return value


def limit_context(item: DatasetItem, k: int) -> DatasetItem:
    """``item`` with its ``context`` (and an input mapping's ``context`` key) cut to ``k``: a list keeps
    its first ``k`` entries (retrieved passages, best first), a string its first ``k`` tokens
    (cl100k_base, :func:`podium.core.tokens.first_tokens`). The id stays, so trials stay paired."""
    inp = item.input
    if isinstance(inp, Mapping) and "context" in inp:
        inp = {**inp, "context": _limit(inp["context"], k)}
    return replace(item, input=inp, context=_limit(item.context, k))


def _few_shot_messages(prompt: Prompt, examples: Sequence[DatasetItem]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ex in examples:
        rendered = prompt.compile(**item_variables(ex))
        user = rendered if isinstance(rendered, str) else next(
            (str(m.get("content", "")) for m in reversed(rendered) if m.get("role") == "user"), "")
        answer = ex.expected if isinstance(ex.expected, str) else json.dumps(ex.expected, default=str)
        out += [{"role": "user", "content": user.replace("{{", "{ {")},
                {"role": "assistant", "content": answer.replace("{{", "{ {")}]
    return out


def _augment(prompt: Prompt, system: str | None, examples: Sequence[DatasetItem]) -> Prompt:
    """The prompt as chat messages with the system variant first and the few-shot examples before
    the prompt's own messages."""
    msgs: list[dict[str, Any]] = ([{"role": "user", "content": prompt.prompt}] if isinstance(prompt.prompt, str)
                                  else [dict(m) for m in prompt.prompt])
    if system is not None:
        msgs = [{"role": "system", "content": system}, *(m for m in msgs if m.get("role") != "system")]
    head = [m for m in msgs if m.get("role") == "system"]
    body = [m for m in msgs if m.get("role") != "system"]
    return replace(prompt, prompt=[*head, *_few_shot_messages(prompt, examples), *body], type="chat")


class _Context:
    """What every trial of one sweep shares."""

    def __init__(self, suite: Suite, space: SweepSpace, sdk: Any, base_url: str, api_key: str | None,
                 items: list[DatasetItem], examples: list[DatasetItem], ds_name: str | None, ds_version: int | None,
                 run_group: str) -> None:
        self.suite, self.space, self.sdk = suite, space, sdk
        self.base_url, self.api_key = base_url, api_key
        self.items, self.examples = items, examples
        self.ds_name, self.ds_version = ds_name, ds_version
        self.run_group = run_group
        self.base_variant = suite.variants[0]
        self.shots: dict[TrialConfig, list[dict[str, Any]]] = {}  # the few-shot turns each trial sent
        self.executor: Any = None  # where the trials' items run (None: this process's threads)

    def variant(self, cfg: TrialConfig) -> Variant:
        v = self.base_variant
        prompt = v.prompt
        if cfg.prompt is not None:
            known = {p.label: p for p in self.suite.prompts}
            prompt = known.get(cfg.prompt) or PromptSpec(cfg.prompt, cfg.prompt if cfg.prompt.startswith(
                "prompts:/") else f"prompts:/{cfg.prompt}")
        pr = v.provider
        provider = ProviderSpec(id=cfg.model, type="gateway", model=cfg.model,
                                config={**(pr.config if pr.type == "gateway" else {}), **dict(cfg.params)},
                                line=pr.line)
        return Variant(f"{self.suite.name} · sweep {cfg.label()}", prompt, provider)

    def task(self, cfg: TrialConfig) -> Any:
        v = self.variant(cfg)
        task = build_task(v, self.suite, base_url=self.base_url, api_key=self.api_key,
                          prompt_client=self.sdk.prompts if self.sdk is not None else None)
        system = self.space.system.get(cfg.system_variant) if cfg.system_variant else None
        if isinstance(task, PromptTask) and (system is not None or cfg.few_shot):
            self.shots[cfg] = _few_shot_messages(task.prompt, self.examples[:cfg.few_shot])
            task = PromptTask(_augment(task.prompt, system, self.examples[:cfg.few_shot]), model=task.model,
                              base_url=self.base_url, api_key=self.api_key, params=task.params, name=task.name,
                              cache=task.cache)
        return task

    def scorers_for(self, item: DatasetItem) -> list[Any]:
        out = self.suite.scorers_for(item)
        if self.sdk is not None:
            use_registry_prompts(out, self.sdk.prompts)
        return out

    def run(self, cfg: TrialConfig, items: Sequence[DatasetItem], *, number: int,
            experiment_id: str | None) -> tuple[str, list[ItemResult]]:
        recorder = HttpRecorder(self.sdk.evals) if self.sdk is not None else MemoryRecorder()
        v = self.variant(cfg)
        run_cfg = RunConfig(**self.suite.run_config())
        runner = Runner(self.task(cfg), [], config=run_cfg, recorder=recorder, client=self.sdk, progress=False,
                        name=v.name, executor=self.executor or "local")
        spec = {"id": experiment_id, "dataset_name": self.ds_name, "dataset_version": self.ds_version,
                "run_group": self.run_group,
                "metadata": {"suite": self.suite.name, "suite_file": self.suite.path, "prompt": v.prompt.label,
                             "provider": v.provider.id, "sweep": {"run_group": self.run_group, "trial": number,
                                                                  "config": cfg.to_dict()}}}
        if cfg.context_size is not None:
            items = [limit_context(i, cfg.context_size) for i in items]
        res = runner.run(items, spec, item_scorers=self.scorers_for, pass_thresholds=self.suite.pass_thresholds())
        return res.id, list(res.items)


def _optimistic(metrics: Mapping[str, Any]) -> tuple[float, float, float]:
    """The best a trial could plausibly reach given its prefix."""
    return (float(metrics["score_ci"][1]), float(metrics.get("cost_per_1k_low", metrics["cost_per_1k"])),
            float(metrics.get("p50_ms", metrics["p95_ms"])))


def _run_trial(ctx: _Context, cfg: TrialConfig, number: int, done: Sequence[Trial], early_stop: bool) -> Trial:
    trial = _run_items(ctx, cfg, number, done, early_stop)
    trial.examples = ctx.shots.get(cfg, [])
    return trial


def _run_items(ctx: _Context, cfg: TrialConfig, number: int, done: Sequence[Trial], early_stop: bool) -> Trial:
    trial = Trial(number, cfg)
    items = ctx.items
    k = max(5, math.ceil(len(items) * ctx.space.prefix))
    try:
        if early_stop and k < len(items):
            front = [t for t in done if t.status == "complete"]
            front = [front[i] for i in pareto_front([t.objectives for t in front], SWEEP_SENSES)]
            eid, first = ctx.run(cfg, items[:k], number=number, experiment_id=None)
            trial.experiment_id = eid
            metrics, _ = trial_metrics(first, seed=number)
            bound = _optimistic(metrics)
            if any(dominates(t.objectives, bound, SWEEP_SENSES) for t in front):
                trial.metrics, trial.scores = trial_metrics(first, seed=number)
                trial.items, trial.status = len(first), "stopped"
                return trial
            # the rest of the items, in the same experiment (a resume skips the done ones)
            if ctx.sdk is not None:
                _, rest = ctx.run(cfg, items, number=number, experiment_id=eid)
            else:
                _, rest = ctx.run(cfg, items[k:], number=number, experiment_id=None)
            results = [*first, *rest]
        else:
            eid, results = ctx.run(cfg, items, number=number, experiment_id=None)
            trial.experiment_id = eid
    except PodiumError as e:
        trial.status, trial.error = "failed", e.message
        return trial
    trial.metrics, trial.scores = trial_metrics(results, seed=number)
    trial.items = len(results)
    if results and all(r["error"] is not None for r in results):
        trial.status, trial.error = "failed", f"every item errored; the first: {results[0]['error']}"
    return trial


# --- the sweep -------------------------------------------------------------------------------------------


def _dataset(suite: Suite, sdk: Any) -> tuple[list[DatasetItem], str | None, int | None]:
    if sdk is None:
        if suite.dataset:
            raise ConfigurationError(f"suite {suite.name!r} reads the server dataset {suite.dataset!r}: "
                                     "pass sdk= (a podium.Podium) to run it")
        return [c.item for c in suite.tests], None, None
    ec = sdk.evals
    if suite.dataset:
        ref, _, ver = suite.dataset.partition("@")
        ds = ec.get_dataset(ref, version=int(ver) if ver.isascii() and ver.isdigit() else None)
        return list(ds.items), ds.name, ds.version
    items = [c.item for c in suite.tests]
    info = ec.add_items(suite.dataset_name, [i.to_dict() for i in items], replace=True, create=True,
                        message=f"tests of suite {suite.name!r} ({Path(suite.path or 'suite').name})")
    return items, suite.dataset_name, info["version"]


def _estimate(trials: Sequence[Trial], cfg: TrialConfig, n_items: int) -> float:
    """The expected cost of running ``cfg`` on ``n_items``: cost per item of the same model's
    trials so far, else of all trials."""
    def per_item(ts: Sequence[Trial]) -> float | None:
        ts = [t for t in ts if t.items]
        return sum(float(t.metrics.get("cost_total") or 0.0) for t in ts) / sum(t.items for t in ts) if ts else None

    same = per_item([t for t in trials if t.config.model == cfg.model])
    every = per_item(trials)
    return (same if same is not None else every or 0.0) * n_items


class SweepRecorder:
    """Records a sweep on the server through ``/api/v1/eval-sweeps`` (created first, each trial posted
    as it ends, the status, spend and summary patched at the end). After the first failure (an older
    server, no write role) it calls ``on_problem(message)`` once and stops trying: the sweep goes on."""

    def __init__(self, sdk: Any, *, on_problem: Callable[[str], None] | None = None) -> None:
        self.sdk = sdk
        self.id: str | None = None
        self.problem: str | None = None
        self.on_problem = on_problem

    def _call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if self.problem is not None:
            return None
        try:
            return self.sdk.evals.request(method, path, json=body, retries=1)
        except PodiumError as e:
            self.problem = f"{e.code}: {e.message}"
            if self.on_problem is not None:
                self.on_problem(self.problem)
            return None

    def create(self, name: str, suite: dict[str, Any], space: dict[str, Any], search: dict[str, Any],
               budget_usd: float | None, *, existing: str | None = None) -> None:
        """Create the sweep (status running); ``existing``: record into that sweep instead (one the
        server created, e.g. a sweep started from the UI)."""
        if existing:
            self.id = existing
            return
        body = {"name": name, "suite": suite, "space": space, "objectives": ["score", "cost_per_1k", "p95_ms"],
                "search": search, "budget_usd": budget_usd}
        created = self._call("POST", "/eval-sweeps", body)
        if isinstance(created, dict) and created.get("id"):
            self.id = str(created["id"])
        elif self.problem is None:
            self.problem = "the server's reply had no sweep id"

    def trial(self, t: Trial) -> None:
        if self.id is not None:
            self._call("POST", f"/eval-sweeps/{self.id}/trials", {"trials": [t.to_dict()]})

    def finish(self, result: SweepResult) -> None:
        if self.id is not None:
            self._call("PATCH", f"/eval-sweeps/{self.id}", {"status": result.status, "spent_usd": result.spent_usd,
                                                             "summary": result.summary})


class _Budget(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def run_sweep(
    suite: Suite | str | Path,
    space: SweepSpace | Mapping[str, Any] | str | Path,
    *,
    sdk: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    method: str | None = None,
    trials: int | None = None,
    budget_usd: float | None = None,
    seed: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    check: bool = True,
    record: bool = False,
    name: str | None = None,
    sweep_id: str | None = None,
    on_problem: Callable[[str], None] | None = None,
    executor: Any = None,
) -> SweepResult:
    """Sweep ``suite`` (a :class:`Suite` or its YAML path) over ``space`` (a :class:`SweepSpace`,
    its mapping or its YAML path); ``method``, ``trials``, ``budget_usd`` and ``seed`` override the
    space's ``search``/``budget_usd``.

    ``sdk`` is a configured :class:`podium.Podium`: trials are recorded as experiments on its
    server and traced; without it the trials run in memory (a suite with inline tests only).
    ``base_url`` is the Podium server whose gateway serves the models (default: the SDK's),
    ``api_key`` its secret key (default: the SDK's). ``on_trial(trial)`` is called as each trial
    ends (the CLI posts it to the server). ``check=False`` skips the up-front check that the
    gateway serves every model (``GET /v1/models``). Raises :class:`ConfigurationError` before the first
    call when the space or suite cannot run (e.g. a model the gateway does not serve).

    ``record=True`` (needs ``sdk``) also records the sweep on the server, as ``podium eval sweep`` does,
    so it is listed under ``/eval-sweeps`` with its front: created as the first trial starts (``name``:
    default the suite's), each trial posted as it ends, the status, spend and summary at the end; the
    result's ``sweep_id`` is its id (None when the server could not record it: ``on_problem(message)``
    is called once and the sweep runs on). ``sweep_id`` records into an existing sweep instead."""
    from podium.experiments.suite import load_suite, new_run_group

    st = suite if isinstance(suite, Suite) else load_suite(suite)
    sp = space if isinstance(space, SweepSpace) else (
        parse_space(space) if isinstance(space, Mapping) else load_space(space))
    sp = replace(sp, method=method or sp.method, trials=trials if trials is not None else sp.trials,
                 budget_usd=budget_usd if budget_usd is not None else sp.budget_usd,
                 seed=seed if seed is not None else sp.seed)
    if sp.method not in METHODS:
        raise ConfigurationError(f"search method {sp.method!r}: use grid or optuna")
    if sdk is not None:
        base_url = base_url or sdk.settings.base_url
        api_key = api_key or sdk.settings.secret_key
    if not base_url:
        raise ConfigurationError("no gateway: pass base_url= (the Podium server) or sdk=")
    if not st.prompts or not st.providers:
        raise SuiteError("the suite needs a prompt and a provider to sweep", path=st.path)
    probe = replace(st, providers=[ProviderSpec(id=m, type="gateway", model=m) for m in sp.models])
    if check:
        check_models(probe, base_url=base_url, api_key=api_key)
    started = time.perf_counter()
    items, ds_name, ds_version = _dataset(st, sdk)
    shots = max(sp.few_shot or [0])
    if shots >= len(items):
        raise ConfigurationError(f"few_shot {shots} needs more than {shots} items; the suite has {len(items)}")
    examples, items = items[:shots], items[shots:]
    ctx = _Context(st, sp, sdk, base_url, api_key, items, examples, ds_name, ds_version, new_run_group())
    # Every trial's items run on one executor (None: PODIUM_EXECUTOR), made once for the sweep (docs/ray.md).
    ctx.executor = resolve_executor(executor)
    recorder = SweepRecorder(sdk, on_problem=on_problem) if record and sdk is not None else None
    if recorder is not None:
        recorder.create(name or st.name, {"name": st.name, "description": st.description, "path": st.path},
                        sp.to_dict(), {"method": sp.method, "trials": sp.trials, "seed": sp.seed}, sp.budget_usd,
                        existing=sweep_id)
    done: list[Trial] = []
    spent = 0.0
    reserved = 0.0  # the estimated cost of the trials running now (grid lanes run side by side)
    stopped: list[str] = []  # the budget's reason, once it stopped the sweep
    lock = threading.Lock()
    status = "completed"

    def run_one(cfg: TrialConfig, early_stop: bool, number: int | None = None) -> Trial:
        nonlocal spent, reserved
        with lock:
            if stopped:
                raise _Budget(stopped[0])
            est = 0.0
            if sp.budget_usd is not None:
                est = _estimate(done, cfg, len(items))
                if spent + reserved + est > sp.budget_usd:
                    stopped.append(f"budget: the next trial ({cfg.label()}) would cost about ${est:.4f}; "
                                   f"${spent:.4f} of ${sp.budget_usd:.4f} spent"
                                   + (f" and ${reserved:.4f} reserved by running trials" if reserved else ""))
                    raise _Budget(stopped[0])
                reserved += est
            prior = list(done)
        t = _run_trial(ctx, cfg, number if number is not None else len(prior) + 1, prior, early_stop)
        with lock:
            reserved -= est
            spent += float(t.metrics.get("cost_total") or 0.0)
            done.append(t)
            if recorder is not None:
                recorder.trial(t)
            if on_trial is not None:
                on_trial(t)
        return t

    try:
        if sp.method == "grid":
            configs = grid(sp)
            if sp.trials is not None and sp.trials < len(configs):
                configs = configs[:sp.trials]
            # with a budget the trials run one at a time: each is estimated from every trial before it
            _grid_lanes(configs, run_one, parallel=sp.parallel and sp.budget_usd is None)
        else:
            _optuna(sp, run_one)
    except _Budget:
        pass
    finally:
        if ctx.executor is not None and not hasattr(executor, "map"):  # made from a name here: ours to close
            ctx.executor.close()
    reason = stopped[0] if stopped else ""
    if reason:
        status = "stopped"
    done.sort(key=lambda t: t.number)
    front = mark_front(done)
    counts = {s: sum(1 for t in done if t.status == s) for s in ("complete", "stopped", "failed")}
    summary: dict[str, Any] = {"trials": len(done), **counts, "front": front, "grid_size": sp.size}
    if reason:
        summary["reason"] = reason
    if done and not counts["complete"]:
        status = "failed"
        summary["reason"] = reason or f"no trial completed; the first error: {done[0].error}"
    result = SweepResult(st.name, sp, done, status, summary, spent, time.perf_counter() - started, ctx.run_group)
    if recorder is not None:
        recorder.finish(result)
        result.sweep_id = recorder.id
    return result


def _grid_lanes(configs: Sequence[TrialConfig], run_one: Callable[[TrialConfig, bool, int], Trial], *,
                parallel: bool) -> None:
    """Run the grid's configurations (numbered in grid order). With ``parallel`` each model's
    configurations run in order in a lane of their own, the lanes side by side: a slow model (the
    local one, on the CPU) does not hold up the upstream models' trials. A budget stop ends every lane
    before its next trial."""
    numbered = list(enumerate(configs, 1))
    lanes: dict[str, list[tuple[int, TrialConfig]]] = {}
    for n, cfg in numbered:
        lanes.setdefault(cfg.model, []).append((n, cfg))
    if not parallel or len(lanes) < 2:
        for n, cfg in numbered:
            run_one(cfg, False, n)
        return

    def lane(todo: list[tuple[int, TrialConfig]]) -> None:
        for n, cfg in todo:
            run_one(cfg, False, n)

    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="podium-sweep-lane") as pool:
        futures = [pool.submit(lane, todo) for todo in lanes.values()]
    for f in futures:
        f.result()  # a budget stop (or a bug) surfaces here, after every lane has ended


def _optuna(sp: SweepSpace, run_one: Callable[[TrialConfig, bool], Trial]) -> None:
    """A multi-objective Optuna study over the space's categorical choices; a configuration the
    sampler suggests again reuses its result (trials count distinct configurations)."""
    try:
        import optuna
    except ImportError as e:
        raise ConfigurationError("an optuna search needs optuna: pip install 'podium[tune]' (or optuna)") from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler: Any = (optuna.samplers.NSGAIISampler(seed=sp.seed) if sp.sampler == "nsga2"
                        else optuna.samplers.TPESampler(seed=sp.seed, multivariate=True, n_startup_trials=10))
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    limit = min(sp.trials or 50, sp.size)
    seen: dict[TrialConfig, Trial] = {}
    choices: dict[str, list[Any]] = {"model": list(sp.models)}
    if sp.prompts:
        choices["prompt"] = list(sp.prompts)
    if sp.system:
        choices["system"] = list(sp.system)
    if sp.few_shot:
        choices["few_shot"] = list(sp.few_shot)
    if sp.context_size:
        choices["context_size"] = list(sp.context_size)
    for k, vals in sp.params.items():
        choices["param:" + k] = list(vals)
    asks = 0
    while len(seen) < limit and asks < limit * 20:
        asks += 1
        ot = study.ask()
        # index-valued categoricals: Optuna's categorical choices must be plain scalars
        pick = {k: vals[ot.suggest_categorical(k, list(range(len(vals))))] for k, vals in choices.items()}
        cfg = TrialConfig(model=pick["model"], prompt=pick.get("prompt"),
                          params=tuple((k, pick["param:" + k]) for k in sp.params),
                          system_variant=pick.get("system"), few_shot=int(pick.get("few_shot", 0)),
                          context_size=pick.get("context_size"))
        t = seen.get(cfg)
        if t is None:
            t = run_one(cfg, sp.early_stop)
            seen[cfg] = t
        if t.status == "failed":
            study.tell(ot, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(ot, list(t.objectives))

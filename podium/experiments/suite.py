"""Evaluation suites: promptfoo-like YAML that CI runs with ``podium eval run suite.yaml``.

::

    description: Capitals                       # the experiments' name (default: the file name)
    prompts:                                    # each prompt x each provider = one experiment
      - "What is the capital of {{country}}? Answer in one word."
      - {id: terse, raw: "Capital of {{country}}:"}
      - file://prompts/qa.txt                   # relative to the suite file
      - prompts:/qa@production                  # a registry version (label or /VERSION)
      - {id: chat, messages: [{role: system, content: "..."}, {role: user, content: "{{question}}"}]}
    providers:
      - local                                   # a gateway model alias
      - {id: local-t0, model: local, config: {temperature: 0, max_tokens: 32}}
      - {id: api, type: http, url: "https://...", body: {q: "{{prompt}}"}, output: answer}
      - {id: mine, type: python, function: "app.py:answer"}   # fn(prompt, vars)
    defaultTest:                                # merged into every test
      vars: {style: short}
      assert: [{type: not-icontains, value: sorry}]
      options: {provider: local}                # default judge model for llm-rubric & co
    tests:
      - description: France
        vars: {country: France}
        expected: Paris                         # optional; scorers that compare with `expected` use it
        assert:
          - {type: icontains, value: "{{capital}}"}  # values are templated with the test's vars
          - {type: rouge-l, threshold: 0.3, weight: 2}
          - {type: not-contains, value: "I don't know"}
        threshold: 0.8                          # optional: pass on weighted score instead of all asserts
      - file://more_tests.csv                   # columns are vars; __expected holds "type: value"
    dataset: qa@3                               # or tests from a server dataset (vars = item input)
    options: {repeat: 1, maxConcurrency: 4, timeout: 60, maxRetries: 3, rpm: null, cache: false}
    gates:                                      # all must pass (default: every test passes)
      - {metric: pass_rate, min: 0.9}           # a scorer's name, pass_rate, score, error_rate,
      - {metric: latency_p95, max: 2000}        #   latency_p50/p95 (ms) or cost (USD)
      - {metric: rouge-l, min: 0.5, stat: low}  # mean (default), low or high end of the 95% CI
      - no_regression: {label: main, tolerance: 0.0}   # or {run: EXPERIMENT_OR_RUN_ID}

promptfoo's own configs run as they are (docs/evals.md has the compatibility table):
``openai:chat:MODEL`` / ``openai:MODEL`` providers (a gateway model, or a server of your own with
``config.apiBaseUrl``), ``javascript`` and inline ``python`` assertions, ``assertionTemplates`` with
``$ref``, Nunjucks templates (``{{ name | upper }}``), ``transform`` (provider, test, assertion),
``---``-separated prompt files, ``outputPath`` and ``env``.

Loading checks everything before anything runs and raises :class:`SuiteError` (exit code 2)
with the file and line: malformed YAML, unknown keys (none is ignored), unknown assertion types
(listing the known ones), bad parameters, prompt variables a test does not set; running checks
that every gateway model exists before the first call.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from podium.core.datasets import DatasetItem, items_from_records
from podium.core.prompts import Prompt
from podium.errors import ConfigurationError, PodiumError
from podium.evals import analysis
from podium.evals.code import CodeError, CodeRuntimeError
from podium.evals.scorers import Scorer, ScorerConfigError, scorer_from_assertion, scorer_specs, scorer_types
from podium.evals.scorers.deterministic import load_callable
from podium.experiments import fairness as fairness_mod
from podium.experiments.judges import use_registry_prompts
from podium.experiments.results import GateVerdict, SuiteResult, VariantResult
from podium.experiments.runner import HttpRecorder, RunConfig, Runner
from podium.experiments.tasks import HttpTask, PromptTask, TaskContext, TaskError, TaskOutput, item_variables
from podium.experiments.transform import Transform, TransformedScorer

__all__ = [
    "Gate",
    "Suite",
    "SuiteError",
    "Variant",
    "check_models",
    "evaluate_gates",
    "load_suite",
    "parse_suite",
]

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TOP_KEYS = {"description", "name", "prompts", "providers", "defaultTest", "tests", "dataset", "options", "gates",
             "scorers", "evaluateOptions", "sharing", "outputPath", "env", "assertionTemplates", "fairness", "bbq"}
_TEST_KEYS = {"description", "vars", "assert", "expected", "threshold", "metadata", "options", "id", "split"}
_DEFAULT_TEST_KEYS = {"vars", "assert", "options", "threshold", "metadata"}
_TEST_OPTION_KEYS = {"transform", "provider", "threshold"}
_OPTION_KEYS = {"repeat", "maxConcurrency", "timeout", "maxRetries", "rpm", "cache"}
_GATE_STATS = ("mean", "low", "high")
_REPORT_SUFFIXES = (".json", ".xml", ".html", ".htm", ".csv", ".yaml", ".yml")
# Nunjucks/Jinja syntax beyond {{var}}: a filter, a statement or a comment
_NUNJUCKS = re.compile(r"\{\{[^{}]*\|[^{}]*\}\}|\{%|\{#|\{\{[^{}]*[.\[(][^{}]*\}\}")
_PROMPT_SEPARATOR = re.compile(r"\n-{3,}\n")
# promptfoo provider ids that name a chat model: openai:chat:MODEL, openai:MODEL (and Podium's own prefixes)
_CHAT_PREFIXES = ("podium:", "gateway:", "openai:chat:", "openai:")
_NOT_CHAT = ("completion", "embedding", "embeddings", "assistant", "realtime", "image", "transcription", "moderation")
_CONNECTION_KEYS = {"apiKey", "apiKeyEnvar", "apiBaseUrl", "apiHost"}
_PROVIDER_KEYS = {"gateway": {"id", "label", "type", "model", "config", "transform"},
                  "http": {"id", "label", "type", "url", "method", "headers", "body", "output", "transform", "config"},
                  "python": {"id", "label", "type", "function", "transform", "config"}}


class SuiteError(ConfigurationError):
    """A suite that cannot run; ``line`` points at the problem in ``path``."""

    code = "suite_error"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else (f"line {line}: " if line else ""))
        super().__init__(where + message, details=[{"path": path, "line": line}])
        self.reason = message
        self.path = path
        self.line = line


# --- YAML with line numbers --------------------------------------------------------------------------


class LDict(dict[str, Any]):
    """A mapping from YAML that knows its line and each key's line."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.line = 0
        self.key_lines: dict[str, int] = {}


class LList(list[Any]):
    """A sequence from YAML that knows its line and each item's line."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.line = 0
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    d = LDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise SuiteError("mapping keys must be plain values", line=k_node.start_mark.line + 1)
        key = str(key)
        if key in d:
            raise SuiteError(f"duplicate key {key!r} (first on line {d.key_lines[key]})", line=k_node.start_mark.line + 1)
        d[key] = loader.construct_object(v_node, deep=True)
        d.key_lines[key] = k_node.start_mark.line + 1
    return d


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LList:
    lst = LList(loader.construct_object(n, deep=True) for n in node.value)
    lst.line = node.start_mark.line + 1
    lst.item_lines = [n.start_mark.line + 1 for n in node.value]
    return lst


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def _line(obj: Any, key: str | int | None = None) -> int | None:
    if isinstance(obj, LDict):
        return obj.key_lines.get(str(key), obj.line) if key is not None else obj.line
    if isinstance(obj, LList):
        if isinstance(key, int) and 0 <= key < len(obj.item_lines):
            return obj.item_lines[key]
        return obj.line
    return None


def _yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: plain data only
    except SuiteError as e:
        raise SuiteError(e.reason, path=path, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise SuiteError(f"malformed YAML{col}: {what}", path=path, line=line) from None
    except yaml.YAMLError as e:
        raise SuiteError(f"malformed YAML: {e}", path=path) from None


# --- the model --------------------------------------------------------------------------------------


@dataclass
class PromptSpec:
    label: str
    prompt: Any  # template string, chat messages, or "prompts:/..." reference
    line: int | None = None
    template_format: str = "mustache"  # "jinja2" for Nunjucks-style templates


@dataclass
class ProviderSpec:
    id: str
    type: str  # gateway | http | python
    model: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    transform: str | None = None
    endpoint: str | None = None  # an OpenAI-compatible base URL called directly (promptfoo's apiBaseUrl)
    secret: str | None = field(default=None, repr=False)  # its key: used, never stored


@dataclass
class TestCase:
    item: DatasetItem
    asserts: list[tuple[dict[str, Any], int | None]]
    threshold: float | None
    line: int | None
    transform: str | None = None
    judge: str | None = None


@dataclass
class Gate:
    kind: str  # threshold | no_regression
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    stat: str = "mean"
    baseline_label: str | None = None
    baseline_run: str | None = None
    metrics: list[str] | None = None
    tolerance: float = 0.0
    confidence: float = 0.95
    required: bool = False
    line: int | None = None

    @property
    def title(self) -> str:
        if self.kind == "threshold":
            bounds = " and ".join(x for x in (f">= {self.min:g}" if self.min is not None else "",
                                              f"<= {self.max:g}" if self.max is not None else "") if x)
            stat = "" if self.stat == "mean" else f" ({self.stat} end of the CI)"
            return f"{self.metric}{stat} {bounds}"
        ref = f"label {self.baseline_label!r}" if self.baseline_label else f"run {self.baseline_run}"
        return f"no significant regression vs {ref}"


@dataclass
class Variant:
    """One experiment of a suite: a prompt with a provider."""

    name: str
    prompt: PromptSpec
    provider: ProviderSpec


@dataclass
class Suite:
    name: str
    path: str | None
    description: str | None
    prompts: list[PromptSpec]
    providers: list[ProviderSpec]
    tests: list[TestCase]
    dataset: str | None
    options: dict[str, Any]
    gates: list[Gate]
    default_judge: str | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    default_asserts: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    output_paths: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    fairness: fairness_mod.FairnessSpec | None = None  # counterfactual swaps (docs/fairness.md)
    bbq: fairness_mod.BbqSpec | None = None  # BBQ-style questions

    @property
    def variants(self) -> list[Variant]:
        out = []
        many = len(self.prompts) * len(self.providers) > 1
        for p in self.prompts:
            for pr in self.providers:
                name = f"{self.name} [{p.label} · {pr.id}]" if many else self.name
                out.append(Variant(name, p, pr))
        return out

    @property
    def dataset_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", self.name).strip("-.") or "suite"
        return ("suite-" + slug)[:200]

    def scorers_for(self, item: DatasetItem) -> list[Scorer]:
        """Fresh scorers for one item: the default assertions, then its test's own (values
        templated with its vars)."""
        case = next((c for c in self.tests if c.item.id == item.id), None)
        asserts = [*self.default_asserts, *(case.asserts if case else [])]
        judge = (case.judge if case else None) or self.default_judge
        transform = case.transform if case else None
        out = [_build_assert(a, item, self.path, line, self.base_dir, judge, transform) for a, line in asserts]
        return out + fairness_mod.fairness_scorers(self.fairness, self.bbq, item)

    def pass_thresholds(self) -> dict[str, float]:
        return {c.item.id: c.threshold for c in self.tests if c.threshold is not None}

    def run_config(self) -> dict[str, Any]:
        o = self.options
        return {"repetitions": int(o.get("repeat", 1)), "max_concurrency": int(o.get("maxConcurrency", 4)),
                "timeout": o.get("timeout"), "max_retries": int(o.get("maxRetries", 3)), "rpm": o.get("rpm")}


# --- parsing -------------------------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(f"cannot read the suite: {e.strerror or e}", path=str(p)) from None
    return parse_suite(text, path=str(p), base_dir=p.resolve().parent)


def parse_suite(text: str, *, path: str | None = None, base_dir: Path | None = None) -> Suite:
    path = path or "suite.yaml"
    base = base_dir or Path.cwd()
    data = _yaml(text, path)
    if not isinstance(data, dict):
        raise SuiteError("a suite is a YAML mapping with prompts, providers, tests and gates", path=path, line=1)

    def err(msg: str, obj: Any = None, key: Any = None) -> SuiteError:
        return SuiteError(msg, path=path, line=_line(obj, key) if obj is not None else None)

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise err(f"unknown key {unknown[0]!r} (Podium ignores no key); a suite has: {', '.join(sorted(_TOP_KEYS))}",
                  data, unknown[0])
    if data.get("sharing") not in (None, False):
        raise err("`sharing` uploads results to promptfoo's cloud, which Podium never does: results are on your "
                  "Podium server; remove it or set it to false", data, "sharing")
    templates = data.get("assertionTemplates") or {}
    if not isinstance(templates, dict) or not all(isinstance(v, dict) for v in templates.values()):
        raise err("`assertionTemplates` maps names to assertions ({type, value, ...}), used as "
                  "$ref: '#/assertionTemplates/NAME'", data, "assertionTemplates")
    env = _env(data, err)
    output_paths = _output_paths(data, base, err)
    name = data.get("name") or data.get("description") or Path(path).stem
    if not isinstance(name, str) or not name.strip():
        raise err("`description` must be a string", data, "description")
    name = " ".join(name.split())[:200]
    options = dict(data.get("evaluateOptions") or {})
    options.update(data.get("options") or {})
    bad = sorted(set(options) - _OPTION_KEYS)
    if bad:
        raise err(f"unknown option {bad[0]!r}; options: {', '.join(sorted(_OPTION_KEYS))}", data.get("options") or data,
                  bad[0])
    for k in ("repeat", "maxConcurrency", "maxRetries"):
        v = options.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "maxRetries" else 1)):
            raise err(f"options.{k} must be a whole number >= {0 if k == 'maxRetries' else 1}", data.get("options"), k)
    if "cache" in options and not isinstance(options["cache"], bool):
        raise err("options.cache must be true or false", data.get("options"), "cache")
    for k in ("timeout", "rpm"):
        v = options.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            raise err(f"options.{k} must be a number > 0", data.get("options"), k)
    if data.get("bbq") not in (None, False) and data.get("prompts") is None:
        data["prompts"] = fairness_mod.BBQ_PROMPT  # the BBQ questions' own prompt
    prompts = _prompts(data, path, base, err)
    providers = _providers(data, path, err)
    default = data.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise err("`defaultTest` must be a mapping (vars, assert, options)", data, "defaultTest")
    bad = sorted(set(default) - _DEFAULT_TEST_KEYS)
    if bad:
        raise err(f"unknown defaultTest key {bad[0]!r}; defaultTest has: {', '.join(sorted(_DEFAULT_TEST_KEYS))}",
                  default, bad[0])
    dopts = _test_options(default, path, _line(data, "defaultTest"))
    default_judge = dopts.get("provider")
    dataset = data.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise err("`dataset` is a server dataset name, NAME or NAME@VERSION", data, "dataset")
    tests = _tests(data, default, path, base, err, templates)
    defaults = _assert_list(default.get("assert"), path, _line(default, "assert"), templates)
    defaults += _assert_list(data.get("scorers"), path, _line(data, "scorers"), templates)
    fair, bbq, tests = _fairness(data, tests, defaults, prompts, path, base, err)
    if not tests and dataset is None:
        raise err("the suite has no tests: add `tests:` (or `dataset:` to use a server dataset)", data)
    gates = [] if data.get("gates") is None and (fair or bbq) else _gates(data, err)
    suite = Suite(name=name, path=path, description=data.get("description"), prompts=prompts, providers=providers,
                  tests=tests, dataset=dataset, options=options, gates=gates,
                  default_judge=default_judge, base_dir=base, default_asserts=defaults,
                  output_paths=output_paths, env=env, fairness=fair, bbq=bbq)
    # Build every assertion once now: unknown types and bad parameters fail before anything runs.
    for t in tests:
        suite.scorers_for(t.item)
        _check_vars(suite, t, path)
    if not tests:
        probe = DatasetItem(id="probe", input={})
        for a, line in defaults:
            if "{{" not in str(a.get("value", "")):
                _build_assert(a, probe, path, line, base, default_judge, dopts.get("transform"))
    for pr in providers:
        if pr.transform:
            _transform(pr.transform, base, path, pr.line)
    return suite


def _fairness(data: dict[str, Any], tests: list[TestCase], defaults: list[tuple[dict[str, Any], int | None]],
              prompts: list[PromptSpec], path: str, base: Path, err: Callable[..., SuiteError],
              ) -> tuple[fairness_mod.FairnessSpec | None, fairness_mod.BbqSpec | None, list[TestCase]]:
    """The ``fairness:`` / ``bbq:`` sections, and the tests they turn the suite's tests into."""
    raw_f, raw_b = data.get("fairness"), data.get("bbq")
    raw_b = None if raw_b is False else raw_b
    if raw_f is None and raw_b is None:
        return None, None, tests
    if raw_f is not None and raw_b is not None:
        raise err("a suite has `fairness:` or `bbq:`, not both: put the BBQ questions in a suite of their own", data,
                  "bbq")
    if data.get("dataset") is not None:
        raise err("`fairness:`/`bbq:` make their tests from the suite's own tests; drop `dataset:`", data, "dataset")
    if raw_b is not None:
        if tests:
            raise err("`bbq:` makes the tests from its questions; remove `tests:` (or use `fairness:` for your own)",
                      data, "tests")
        bspec = fairness_mod.parse_bbq(raw_b, base=base, err=lambda m: err(m, data, "bbq"))
        bspec.line = _line(data, "bbq")
        return None, bspec, [TestCase(i, [], None, bspec.line) for i in fairness_mod.bbq_cases(bspec)]
    names = {str(a.get("metric") or a.get("type")) for a, _ in defaults}
    names |= {str(a.get("metric") or a.get("type")) for t in tests for a, _ in t.asserts}
    fspec = fairness_mod.parse_fairness(raw_f, base=base, err=lambda m: err(m, data, "fairness"),
                                        scorer_names=sorted(names))
    fspec.line = _line(data, "fairness")
    used: set[str] = set()
    for p in prompts:
        if isinstance(p.prompt, str) and p.prompt.startswith("prompts:/"):
            used = {"*"}
            break
        used |= set(Prompt(name="prompt", prompt=p.prompt, type="chat" if isinstance(p.prompt, list) else "text",
                           template_format=p.template_format).variables)
    for tl in fspec.lists:
        if "*" not in used and not used & set(tl.variables):
            raise err(f"term list {tl.name!r} fills {', '.join('{{' + v + '}}' for v in tl.variables)}, but no "
                      "prompt uses any of them", data, "fairness")
    if not tests:
        tests = [TestCase(DatasetItem(id="template", input={}), [], None, fspec.line)]
    out = [TestCase(new, c.asserts, c.threshold, c.line, c.transform, c.judge)
           for c in tests for _, new in fairness_mod.expand_cases([c.item], fspec)]
    return fspec, None, out


def _env(data: dict[str, Any], err: Callable[..., SuiteError]) -> dict[str, str]:
    env = data.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str | int | float | bool) for v in env.values()):
        raise err("`env` maps environment variable names to values (set while the suite runs)", data, "env")
    return {str(k): str(v) for k, v in env.items()}


def _output_paths(data: dict[str, Any], base: Path, err: Callable[..., SuiteError]) -> list[Path]:
    raw = data.get("outputPath")
    if raw is None:
        return []
    paths = [raw] if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise err("`outputPath` is a file name or a list of them (results.json, .csv, .yaml, .html, .xml)", data,
                  "outputPath")
    out = []
    for p in paths:
        fp = Path(p)
        if fp.suffix.lower() not in _REPORT_SUFFIXES:
            raise err(f"outputPath {p!r}: name it .json, .csv, .yaml, .html or .xml (JUnit)", data, "outputPath")
        out.append(fp if fp.is_absolute() else (base / fp).resolve())
    return out


def _test_options(t: Mapping[str, Any], path: str, line: int | None) -> dict[str, Any]:
    """A test's (or defaultTest's) ``options``: transform, provider (the judge), threshold."""
    opts = t.get("options") or {}
    where = _line(t, "options") or line
    if not isinstance(opts, dict):
        raise SuiteError("a test's `options` is a mapping (transform, provider, threshold)", path=path, line=where)
    bad = sorted(set(opts) - _TEST_OPTION_KEYS)
    if bad:
        raise SuiteError(f"unknown test option {bad[0]!r}; Podium supports: {', '.join(sorted(_TEST_OPTION_KEYS))}",
                         path=path, line=_line(opts, bad[0]) or where)
    out = dict(opts)
    judge = out.get("provider")
    if isinstance(judge, dict):
        judge = judge.get("id")
    if judge is not None:
        out["provider"] = _chat_model(str(judge), path, where)
    if out.get("transform") is not None and not isinstance(out["transform"], str):
        raise SuiteError("`options.transform` is JavaScript (an expression or file://x.js) or file://x.py",
                         path=path, line=where)
    return out


def _transform(source: str, base: Path, path: str | None, line: int | None) -> Transform:
    try:
        return Transform(source, base=base)
    except CodeError as e:
        raise SuiteError(e.message, path=path, line=line) from None


def _chat_model(pid: str, path: str | None, line: int | None) -> str:
    """The gateway model a provider id names: ``openai:chat:M``, ``openai:M``, ``podium:M`` or ``M``."""
    for prefix in _CHAT_PREFIXES:
        if pid.startswith(prefix):
            rest = pid[len(prefix):]
            kind = rest.split(":", 1)[0]
            if prefix == "openai:" and kind in _NOT_CHAT:
                raise SuiteError(f"provider {pid!r}: Podium evaluates chat models; use openai:chat:MODEL",
                                 path=path, line=line)
            if not rest:
                raise SuiteError(f"provider {pid!r} names no model (openai:chat:MODEL)", path=path, line=line)
            return rest
    return pid


def _prompts(data: dict[str, Any], path: str, base: Path, err: Callable[..., SuiteError]) -> list[PromptSpec]:
    raw = data.get("prompts")
    if raw is None:
        raise err("the suite needs `prompts:` (one or more templates using {{vars}})", data)
    if isinstance(raw, str):
        raw = LList([raw])
    if not isinstance(raw, list) or not raw:
        raise err("`prompts` must be a non-empty list", data, "prompts")
    out = []
    for i, p in enumerate(raw):
        line = _line(raw, i)
        label = f"prompt-{i + 1}"
        if isinstance(p, dict):
            unknown = set(p) - {"id", "label", "raw", "messages", "file", "prompt"}
            if unknown:
                raise SuiteError(f"unknown prompt key {sorted(unknown)[0]!r}; a prompt has id/label and one of raw, "
                                 "messages, file, prompt", path=path, line=line)
            label = str(p.get("id") or p.get("label") or label)
            body = p.get("raw", p.get("messages", p.get("prompt")))
            if p.get("file"):
                body = "file://" + str(p["file"])
        else:
            body = p
        if isinstance(body, str) and body.startswith("file://"):
            fp = (base / body[7:]).resolve()
            try:
                text = fp.read_text(encoding="utf-8")
            except OSError as e:
                raise SuiteError(f"cannot read prompt file {fp}: {e.strerror or e}", path=path, line=line) from None
            body = json.loads(text) if fp.suffix == ".json" else text
            if not isinstance(p, dict):
                label = fp.stem
            if isinstance(body, str) and _PROMPT_SEPARATOR.search(body):
                # promptfoo: prompts in one text file are separated by a line of dashes
                parts = [x.strip("\n") for x in _PROMPT_SEPARATOR.split(body) if x.strip()]
                for n, part in enumerate(parts, 1):
                    out.append(_prompt_spec(f"{label}-{n}", part, path, line))
                continue
        if isinstance(body, str) and body.startswith("prompts:/") and not isinstance(p, dict):
            label = body[len("prompts:/"):]
        out.append(_prompt_spec(label, body, path, line))
    labels = [p.label for p in out]
    if len(set(labels)) != len(labels):
        raise err("two prompts have the same id; give each an `id`", data, "prompts")
    return out


def _template_format(body: Any) -> str:
    texts = [body] if isinstance(body, str) else [str(m.get("content", "")) for m in body if isinstance(m, dict)]
    return "jinja2" if any(_NUNJUCKS.search(t) for t in texts) else "mustache"


def _prompt_spec(label: str, body: Any, path: str, line: int | None) -> PromptSpec:
    """One prompt, checked now; Nunjucks-style templates render with Jinja2."""
    fmt = "mustache"
    if isinstance(body, str) and body.startswith("prompts:/"):
        pass  # a registry version, fetched when the suite runs
    elif isinstance(body, str):
        fmt = _template_format(body)
        try:
            Prompt(name="prompt", prompt=body, template_format=fmt)
        except PodiumError as e:
            raise SuiteError(str(e), path=path, line=line) from None
    elif isinstance(body, list):
        try:
            fmt = _template_format(body)
            Prompt(name="prompt", prompt=[dict(m) for m in body], type="chat", template_format=fmt)
        except (PodiumError, TypeError, ValueError, AttributeError) as e:
            raise SuiteError(f"invalid chat prompt: {e}", path=path, line=line) from None
    else:
        raise SuiteError("a prompt is a template string, a list of chat messages, file://PATH or "
                         "prompts:/NAME@LABEL", path=path, line=line)
    return PromptSpec(label, body, line, fmt)


def _providers(data: dict[str, Any], path: str, err: Callable[..., SuiteError]) -> list[ProviderSpec]:
    raw = data.get("providers")
    if raw is None:
        raw = LList(["local"])
    if isinstance(raw, str):
        raw = LList([raw])
    if not isinstance(raw, list) or not raw:
        raise err("`providers` must be a non-empty list (gateway model aliases such as `local`)", data, "providers")
    out = []
    for i, p in enumerate(raw):
        line = _line(raw, i)
        if isinstance(p, str):
            out.append(ProviderSpec(id=p, type="gateway", model=_chat_model(p, path, line), line=line))
            continue
        if not isinstance(p, dict):
            raise err("a provider is a gateway model alias or a mapping with `id`", raw, i)
        kind = p.get("type") or ("http" if p.get("url") else "python" if p.get("function") else "gateway")
        if kind not in ("gateway", "http", "python"):
            raise err(f"unknown provider type {kind!r}: use gateway, http or python", raw, i)
        bad = sorted(set(p) - _PROVIDER_KEYS[kind])
        if bad:
            raise SuiteError(f"unknown key {bad[0]!r} for a {kind} provider; it has: "
                             f"{', '.join(sorted(_PROVIDER_KEYS[kind]))}", path=path, line=_line(p, bad[0]) or line)
        pid = str(p.get("id") or p.get("label") or p.get("model") or kind)
        cfg = p.get("config") or {}
        if not isinstance(cfg, dict):
            raise err("provider `config` must be a mapping (temperature, max_tokens, ...)", raw, i)
        transform = p.get("transform")
        if transform is not None and not isinstance(transform, str):
            raise SuiteError("a provider's `transform` is JavaScript (an expression or file://x.js) or file://x.py",
                             path=path, line=_line(p, "transform") or line)
        label = str(p.get("label") or pid)
        if kind == "gateway":
            model = str(p.get("model") or _chat_model(str(p.get("id") or pid), path, line))
            params = {k: v for k, v in cfg.items() if k not in _CONNECTION_KEYS}
            endpoint, secret = _connection(cfg, path, _line(p, "config") or line)
            out.append(ProviderSpec(id=label, type=kind, model=model, config=params, raw=dict(p), line=line,
                                    transform=transform, endpoint=endpoint, secret=secret))
        elif kind == "http":
            if not isinstance(p.get("url"), str):
                raise err("an http provider needs `url`", raw, i)
            out.append(ProviderSpec(id=label, type=kind, config=dict(cfg), raw=dict(p), line=line, transform=transform))
        else:
            if not isinstance(p.get("function"), str) or ":" not in p["function"]:
                raise err("a python provider needs `function: file.py:name` (or module:name)", raw, i)
            out.append(ProviderSpec(id=label, type=kind, raw=dict(p), line=line, transform=transform))
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise err("two providers have the same id; give each an `id` or `label`", data, "providers")
    return out


def _connection(cfg: Mapping[str, Any], path: str, line: int | None) -> tuple[str | None, str | None]:
    """promptfoo's connection settings: call an OpenAI-compatible server directly (never stored)."""
    base = cfg.get("apiBaseUrl")
    if base is None and cfg.get("apiHost"):
        base = f"https://{cfg['apiHost']}/v1"
    key = cfg.get("apiKey")
    if cfg.get("apiKeyEnvar"):
        key = os.environ.get(str(cfg["apiKeyEnvar"]))
        if key is None:
            raise SuiteError(f"config.apiKeyEnvar: the environment has no {cfg['apiKeyEnvar']}", path=path, line=line)
    if base is None and key is not None:
        raise SuiteError("config.apiKey without apiBaseUrl: Podium calls the model through its gateway with your "
                         "Podium key, so put the provider's key in the gateway's config (gateway.yaml) and remove "
                         "apiKey here, or set apiBaseUrl to call that server directly", path=path, line=line)
    if base is not None and not (isinstance(base, str) and base.startswith(("http://", "https://"))):
        raise SuiteError("config.apiBaseUrl must be an http(s) URL such as https://api.example.com/v1", path=path, line=line)
    return base, (str(key) if key is not None else None)


def _assert_list(v: Any, path: str, line: int | None,
                 templates: Mapping[str, Any] | None = None) -> list[tuple[dict[str, Any], int | None]]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise SuiteError("`assert` must be a list of assertions ({type, value, threshold, weight})", path=path,
                         line=line)
    out = []
    for i, a in enumerate(v):
        ln = _line(v, i)
        if isinstance(a, dict) and "$ref" in a:
            ref = a["$ref"]
            prefix = "#/assertionTemplates/"
            name = ref[len(prefix):] if isinstance(ref, str) and ref.startswith(prefix) else None
            if name is None or name not in (templates or {}):
                known = ", ".join(prefix + k for k in sorted(templates or {})) or "(none: add assertionTemplates)"
                raise SuiteError(f"$ref {ref!r} names no assertion template; known: {known}", path=path, line=ln)
            a = {**(templates or {})[name], **{k: x for k, x in a.items() if k != "$ref"}}
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            raise SuiteError("an assertion is a mapping with a `type` (for example {type: icontains, value: Paris})",
                             path=path, line=ln)
        out.append((dict(a), ln))
    return out


def _csv_assert(cell: str) -> dict[str, Any]:
    """promptfoo's CSV ``__expected`` cell: ``type: value`` (a known type) or a plain value (equals)."""
    head, sep, rest = cell.partition(":")
    t = head.strip()
    base = t[4:] if t.startswith("not-") else t
    if sep and base in scorer_types():
        return {"type": t, "value": rest.strip()} if rest.strip() else {"type": t}
    return {"type": "equals", "value": cell}


def _file_tests(ref: str, base: Path, path: str, line: int | None) -> list[dict[str, Any]]:
    fp = (base / ref[7:]).resolve()
    try:
        text = fp.read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(f"cannot read tests file {fp}: {e.strerror or e}", path=path, line=line) from None
    suffix = fp.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _yaml(text, str(fp))
        return list(data) if isinstance(data, list) else [data]
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for n, ln in enumerate(text.splitlines(), 1):
            if ln.strip():
                try:
                    out.append(json.loads(ln))
                except ValueError as e:
                    raise SuiteError(f"not valid JSON ({e})", path=str(fp), line=n) from None
        return out
    if suffix == ".json":
        data = json.loads(text)
        return list(data) if isinstance(data, list) else [data]
    if suffix == ".csv":
        out = []
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            t: dict[str, Any] = {"vars": {}, "assert": []}
            for k, v in row.items():
                if k is None or v is None:
                    continue
                if k.startswith("__expected"):
                    if v.strip():
                        t["assert"].append(_csv_assert(v))
                elif k == "__description":
                    t["description"] = v
                else:
                    t["vars"][k] = v
            out.append(t)
        return out
    raise SuiteError(f"tests file {fp.name}: use .csv, .jsonl, .json or .yaml", path=path, line=line)


def _tests(data: dict[str, Any], default: dict[str, Any], path: str, base: Path,
           err: Callable[..., SuiteError], templates: Mapping[str, Any] | None = None) -> list[TestCase]:
    raw = data.get("tests")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = LList([raw])
        raw.line = _line(data, "tests") or 0
        raw.item_lines = [raw.line]
    if not isinstance(raw, list):
        raise err("`tests` must be a list of tests (or file://tests.csv)", data, "tests")
    dvars = default.get("vars") or {}
    if not isinstance(dvars, dict):
        raise err("`defaultTest.vars` must be a mapping", default, "vars")
    dopts = _test_options(default, path, _line(data, "defaultTest"))
    dthreshold = default.get("threshold", dopts.get("threshold"))
    expanded: list[tuple[Any, int | None]] = []
    for i, t in enumerate(raw):
        if isinstance(t, str) and t.startswith("file://"):
            expanded.extend((x, _line(raw, i)) for x in _file_tests(t, base, path, _line(raw, i)))
        else:
            expanded.append((t, _line(raw, i)))
    records = []
    cases = []
    for t, line in expanded:
        if not isinstance(t, dict):
            raise SuiteError("a test is a mapping with `vars` and `assert`", path=path, line=line)
        unknown = set(t) - _TEST_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise SuiteError(f"unknown test key {k!r}; a test has: {', '.join(sorted(_TEST_KEYS))}", path=path,
                             line=_line(t, k) or line)
        tvars = t.get("vars") or {}
        if not isinstance(tvars, dict):
            raise SuiteError("`vars` must be a mapping of variable names to values", path=path,
                             line=_line(t, "vars") or line)
        variables = {**dvars, **tvars}
        meta = dict(t.get("metadata") or {})
        if t.get("description"):
            meta["description"] = str(t["description"])
        rec: dict[str, Any] = {"input": _plain(variables), "metadata": _plain(meta)}
        if t.get("id") is not None:
            rec["id"] = str(t["id"])
        if t.get("expected") is not None:
            rec["expected"] = _plain(t["expected"])
        if t.get("split") is not None:
            rec["split"] = t["split"]
        topts = {**dopts, **_test_options(t, path, line)}
        threshold = t.get("threshold", topts.get("threshold", dthreshold))
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise SuiteError("`threshold` must be a number (the weighted score a test needs to pass)", path=path,
                             line=_line(t, "threshold") or line)
        records.append(rec)
        asserts = _assert_list(t.get("assert"), path, _line(t, "assert") or line, templates)
        cases.append((asserts, threshold, _line(t) or line, topts.get("transform"), topts.get("provider")))
    try:
        items = items_from_records(records, where="tests", extra_to=None)
    except PodiumError as e:
        raise SuiteError(e.message, path=path, line=_line(data, "tests")) from None
    return [TestCase(item, list(a), th, ln, tr, judge)
            for item, (a, th, ln, tr, judge) in zip(items, cases, strict=True)]


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _gates(data: dict[str, Any], err: Callable[..., SuiteError]) -> list[Gate]:
    raw = data.get("gates")
    if raw is None:
        return [Gate(kind="threshold", metric="pass_rate", min=1.0)]
    if not isinstance(raw, list):
        raise err("`gates` must be a list, e.g. [{metric: pass_rate, min: 0.9}, {no_regression: {label: main}}]",
                  data, "gates")
    out = []
    for i, g in enumerate(raw):
        line = _line(raw, i)
        if not isinstance(g, dict):
            raise err("a gate is {metric, min|max} or {no_regression: {label|run, ...}}", raw, i)
        if "no_regression" in g:
            spec = g["no_regression"]
            if not isinstance(spec, dict):
                raise err("`no_regression` needs {label: NAME} or {run: ID}", raw, i)
            unknown = set(spec) - {"label", "run", "metrics", "tolerance", "confidence", "required"}
            if unknown or bool(spec.get("label")) == bool(spec.get("run")):
                raise err("`no_regression` takes exactly one of label/run, and optionally metrics, tolerance, "
                          "confidence, required", raw, i)
            metrics = spec.get("metrics")
            if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
                raise err("`no_regression.metrics` must be a list of metric names", raw, i)
            tol = spec.get("tolerance", 0.0)
            conf = spec.get("confidence", 0.95)
            if not isinstance(tol, int | float) or tol < 0 or not isinstance(conf, float) or not 0 < conf < 1:
                raise err("`tolerance` must be >= 0 and `confidence` between 0 and 1", raw, i)
            out.append(Gate(kind="no_regression", baseline_label=spec.get("label"), baseline_run=spec.get("run"),
                            metrics=metrics, tolerance=float(tol), confidence=float(conf),
                            required=bool(spec.get("required", False)), line=line))
            continue
        unknown = set(g) - {"metric", "min", "max", "stat"}
        if unknown:
            raise err(f"unknown gate key {sorted(unknown)[0]!r}; a threshold gate has metric, min, max, stat", raw, i)
        metric = g.get("metric")
        if not isinstance(metric, str) or not metric:
            raise err("a gate needs `metric` (a scorer name, pass_rate, score, error_rate, latency_p50, latency_p95 "
                      "or cost)", raw, i)
        lo, hi = g.get("min"), g.get("max")
        for v in (lo, hi):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise err("gate `min`/`max` must be numbers", raw, i)
        if lo is None and hi is None:
            raise err(f"gate on {metric!r} needs `min` or `max`", raw, i)
        stat = g.get("stat", "mean")
        if stat not in _GATE_STATS:
            raise err(f"gate `stat` must be one of {', '.join(_GATE_STATS)}", raw, i)
        out.append(Gate(kind="threshold", metric=metric, min=lo, max=hi, stat=stat, line=line))
    return out


def _render(value: Any, variables: Mapping[str, Any], *, path: str | None, line: int | None) -> Any:
    if isinstance(value, str) and _NUNJUCKS.search(value):
        try:
            return Prompt(name="assert", prompt=value, template_format="jinja2").compile(**variables)
        except PodiumError as e:
            raise SuiteError(f"the assertion's template: {e}", path=path, line=line) from None
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            k = m.group(1)
            if k not in variables:
                raise SuiteError(f"the assertion uses {{{{{k}}}}}, which this test's vars do not set; it sets: "
                                 f"{', '.join(sorted(variables)) or '(nothing)'}", path=path, line=line)
            v = variables[k]
            return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_render(v, variables, path=path, line=line) for v in value]
    return value


def _judge_types() -> set[str]:
    return {s.type for s in scorer_specs() if s.category == "judge"}


def _build_assert(a: Mapping[str, Any], item: DatasetItem, path: str | None, line: int | None, base: Path,
                  default_judge: str | None, test_transform: str | None = None) -> Scorer:
    variables = item_variables(item)
    t = str(a.get("type", ""))
    bare = t[4:] if t.startswith("not-") else t
    code = bare in ("javascript", "python")  # code is not a template: {{ }} may be JavaScript's own braces
    spec = {k: (_render(v, variables, path=path, line=line) if k == "value" and not code else v)
            for k, v in a.items() if k != "transform"}
    own_transform = a.get("transform")
    if own_transform is not None and not isinstance(own_transform, str):
        raise SuiteError("an assertion's `transform` is JavaScript (an expression or file://x.js) or file://x.py",
                         path=path, line=line)
    if code and isinstance(spec.get("value"), str) and spec["value"].startswith("file://"):
        rel = spec["value"][len("file://"):]
        spec["value"] = "file://" + str(base / rel) if not Path(rel).is_absolute() else spec["value"]
    if bare == "python" and isinstance(spec.get("value"), str) and ".py:" in spec["value"]:
        file, _, fn = spec["value"].rpartition(":")
        if not Path(file).is_absolute():
            spec["value"] = f"{(base / file).resolve()}:{fn}"
    if default_judge and bare in _judge_types() and "provider" not in spec:
        spec["provider"] = default_judge
    try:
        scorer = scorer_from_assertion(spec)
    except ScorerConfigError as e:
        raise SuiteError(e.message, path=path, line=line) from None
    except PodiumError as e:
        raise SuiteError(e.message, path=path, line=line) from None
    sources = [x for x in (test_transform, own_transform) if x]
    if not sources:
        return scorer
    return TransformedScorer(scorer, [_transform(x, base, path, line) for x in sources])


def _check_vars(suite: Suite, case: TestCase, path: str) -> None:
    variables = item_variables(case.item)
    for p in suite.prompts:
        if isinstance(p.prompt, str) and p.prompt.startswith("prompts:/"):
            continue
        pr = Prompt(name="prompt", prompt=p.prompt, type="chat" if isinstance(p.prompt, list) else "text",
                    template_format=p.template_format)
        missing = [v for v in pr.variables if v not in variables]
        if missing:
            raise SuiteError(f"prompt {p.label!r} uses {', '.join('{{' + m + '}}' for m in missing)}, which this "
                             f"test's vars do not set", path=path, line=case.line)


# --- tasks per variant -----------------------------------------------------------------------------------


class PromptedTask:
    """A prompt rendered per item, handed to an HTTP endpoint or a Python function
    (``{{prompt}}`` in an HTTP body; ``fn(prompt, vars)`` for a function)."""

    def __init__(self, prompt: Prompt, provider: ProviderSpec, base: Path) -> None:
        self.prompt = prompt
        self.provider = provider
        self.name = provider.id
        if provider.type == "http":
            r = provider.raw
            self.http = HttpTask(r["url"], method=r.get("method", "POST"), headers=r.get("headers"),
                                 body=r.get("body"), output=r.get("output"), name=provider.id)
        else:
            ref = provider.raw["function"]
            file, _, fn = ref.rpartition(":")
            if file.endswith(".py") and not Path(file).is_absolute():
                ref = f"{(base / file).resolve()}:{fn}"
            try:
                self.fn = load_callable(ref)
            except ScorerConfigError as e:
                raise SuiteError(e.message.replace("python:", "python provider:"), line=provider.line) from None

    def describe(self) -> dict[str, Any]:
        return {"type": self.provider.type, "provider": self.provider.id, "prompt": self.prompt.prompt}

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput:
        variables = item_variables(item)
        try:
            rendered = self.prompt.compile(**variables)
        except PodiumError as e:
            raise TaskError(str(e)) from e
        text = rendered if isinstance(rendered, str) else "\n".join(str(m.get("content", "")) for m in rendered)
        if self.provider.type == "http":
            inner = DatasetItem(id=item.id, input={**variables, "prompt": text,
                                                   "messages": rendered if isinstance(rendered, list) else None},
                                expected=item.expected, context=item.context, metadata=item.metadata)
            return self.http.run(inner, ctx)
        out = self.fn(text, variables)
        return out if isinstance(out, TaskOutput) else TaskOutput(out)


def build_task(variant: Variant, suite: Suite, *, base_url: str, api_key: str | None, prompt_client: Any) -> Any:
    """The task of one variant: a gateway call, or the prompt handed to an HTTP/Python provider."""
    p, pr = variant.prompt, variant.provider
    try:
        if isinstance(p.prompt, str) and p.prompt.startswith("prompts:/"):
            prompt = PromptTask(p.prompt, base_url=base_url, api_key=api_key, prompt_client=prompt_client).prompt
            missing = [v for case in suite.tests for v in prompt.variables if v not in item_variables(case.item)]
            if missing:
                raise SuiteError(f"prompt {p.prompt} uses {{{{{missing[0]}}}}}, which some tests do not set",
                                 path=suite.path, line=p.line)
        else:
            prompt = Prompt(name=p.label, prompt=p.prompt, type="chat" if isinstance(p.prompt, list) else "text",
                            template_format=p.template_format)
    except SuiteError:
        raise
    except PodiumError as e:
        raise SuiteError(f"prompt {p.label!r}: {e.message}", path=suite.path, line=p.line) from None
    task: Any
    if pr.type == "gateway":
        task = PromptTask(prompt, model=pr.model, base_url=base_url, api_key=pr.secret if pr.endpoint else api_key,
                          params=pr.config, name=variant.prompt.label, cache=bool(suite.options.get("cache", False)),
                          endpoint=pr.endpoint)
    else:
        task = PromptedTask(prompt, pr, suite.base_dir)
    if pr.transform:
        return TransformedTask(task, _transform(pr.transform, suite.base_dir, suite.path, pr.line), prompt)
    return task


class TransformedTask:
    """A task whose output goes through the provider's ``transform`` (what the experiment stores)."""

    def __init__(self, task: Any, transform: Transform, prompt: Prompt) -> None:
        self.task = task
        self.transform = transform
        self.prompt = prompt
        self.name = task.name

    def describe(self) -> dict[str, Any]:
        return {**self.task.describe(), "transform": self.transform.source}

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput:
        res = self.task.run(item, ctx)
        try:
            return replace(res, output=self.transform(res.output, item_variables(item), self.prompt.prompt))
        except CodeRuntimeError as e:
            raise TaskError(f"the provider's transform failed: {e}") from e


# --- gates -------------------------------------------------------------------------------------------------


def evaluate_gates(
    gates: Sequence[Gate],
    summary: Mapping[str, Any],
    *,
    compare: Callable[[Gate], tuple[dict[str, Any] | None, str | None]] | None = None,
) -> list[GateVerdict]:
    """Each gate's verdict: ``{"gate", "kind", "status": passed|failed|skipped, "detail", ...}``.

    ``compare(gate)`` returns ``(comparison, baseline_id)`` for a no-regression gate, or
    ``(None, reason)`` when there is no baseline."""
    out: list[GateVerdict] = []
    for g in gates:
        if g.kind == "threshold":
            assert g.metric is not None
            known = {*analysis.PSEUDO_METRICS, *(summary.get("scorers") or {})}
            value = analysis.metric_of(summary, g.metric, g.stat)
            if g.metric not in known:
                out.append({"gate": g.title, "kind": g.kind, "status": "failed", "metric": g.metric, "value": None,
                            "detail": f"no metric {g.metric!r} in this run; it has: {', '.join(sorted(known))}"})
                continue
            if value is None:
                out.append({"gate": g.title, "kind": g.kind, "status": "failed", "metric": g.metric, "value": None,
                            "detail": f"{g.metric} has no value (every item errored?)"})
                continue
            ok = (g.min is None or value >= g.min) and (g.max is None or value <= g.max)
            out.append({"gate": g.title, "kind": g.kind, "status": "passed" if ok else "failed", "metric": g.metric,
                        "value": value, "min": g.min, "max": g.max, "stat": g.stat,
                        "detail": f"{g.metric} {g.stat} = {value:.4g}"})
            continue
        if compare is None:
            out.append({"gate": g.title, "kind": g.kind, "status": "skipped", "detail": "no server to compare with"})
            continue
        cmp, ref = compare(g)
        if cmp is None:
            out.append({"gate": g.title, "kind": g.kind, "status": "failed" if g.required else "skipped",
                        "detail": ref or "no baseline"})
            continue
        regressed = {m: v for m, v in cmp["metrics"].items() if v.get("regressed")}
        improved = [m for m, v in cmp["metrics"].items() if v.get("improved")]
        detail = (("regressed: " + "; ".join(f"{m}: {v['reason']}" for m, v in regressed.items())) if regressed
                  else f"no significant regression in {', '.join(cmp['metrics'])}"
                  + (f" (improved: {', '.join(improved)})" if improved else ""))
        out.append({"gate": g.title, "kind": g.kind, "status": "failed" if regressed else "passed",
                    "baseline": ref, "detail": detail, "comparison": cmp})
    return out


def new_run_group() -> str:
    return "run-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]


# --- running a suite ---------------------------------------------------------------------------------------


def _baseline_for(ec: Any, gate: Gate, name: str, candidate: str) -> tuple[dict[str, Any] | None, str]:
    """The experiment a no-regression gate compares with, or (None, why not)."""
    if gate.baseline_label:
        rows = [e for e in ec.list_experiments(label=gate.baseline_label, name=name, status="completed", limit=5,
                                               summary="false") if e["id"] != candidate]
        if not rows:
            return None, (f"no completed experiment named {name!r} has label {gate.baseline_label!r} yet "
                          "(label a good run with --label)")
        return rows[0], f"label {gate.baseline_label!r}"
    ref = str(gate.baseline_run)
    exp = ec.find_experiment(ref)
    if exp is None:
        rows = [e for e in ec.list_experiments(run_group=ref, name=name, limit=5, summary="false")
                if e["id"] != candidate]
        if not rows:
            return None, f"no experiment {ref!r} (nor one named {name!r} in run {ref!r})"
        exp = rows[0]
    return exp, f"run {ref}"


def run_suite(
    suite: Suite,
    sdk: Any,
    *,
    base_url: str,
    api_key: str | None,
    labels: Sequence[str] = (),
    resume: str | None = None,
    repeat: int | None = None,
    progress: bool | None = None,
    executor: Any = None,
) -> SuiteResult:
    """Run every variant of ``suite`` against a server (through ``sdk``, a configured
    :class:`podium.Podium`), evaluate the gates, and label the experiments with ``labels``
    when every gate passed. Returns the suite result that reports are written from.

    Raises :class:`SuiteError` before the first call when a provider names a model the
    gateway does not serve. The suite's ``env`` is set while it runs."""
    from podium.experiments.executor import resolve_executor

    with _environment(suite.env):
        check_models(suite, base_url=base_url, api_key=api_key)
        ex = resolve_executor(executor)  # one for every variant (None: the runner's own threads)
        try:
            return _run_suite(suite, sdk, base_url=base_url, api_key=api_key, labels=labels, resume=resume,
                              repeat=repeat, progress=progress, executor=ex or "local")
        finally:
            if ex is not None and not hasattr(executor, "map"):  # made from a name here: ours to close
                ex.close()


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_models(suite: Suite, *, base_url: str, api_key: str | None) -> None:
    """Every gateway provider's model (and judge model) must be one the gateway serves."""
    import httpx

    wanted = [(p.model, p.id, p.line) for p in suite.providers if p.type == "gateway" and not p.endpoint]
    judges = {c.judge for c in suite.tests if c.judge} | ({suite.default_judge} if suite.default_judge else set())
    wanted += [(j, f"judge {j}", None) for j in sorted(judges)]
    if not wanted:
        return
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(f"{base_url.rstrip('/')}/v1/models", headers=headers, timeout=30)
        r.raise_for_status()
        served = {m["id"] for m in r.json()["data"]}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise SuiteError(f"cannot list the gateway's models at {base_url}/v1/models: {e}", path=suite.path) from None
    for model, who, line in wanted:
        if model not in served and not (model or "").startswith("registry:/"):  # a registered version: resolved per call
            raise SuiteError(f"provider {who!r}: the gateway has no model {model!r}; it serves: "
                             f"{', '.join(sorted(served)) or '(none)'} (declare more in gateway.yaml)",
                             path=suite.path, line=line)


def _run_suite(
    suite: Suite,
    sdk: Any,
    *,
    base_url: str,
    api_key: str | None,
    labels: Sequence[str],
    resume: str | None,
    repeat: int | None,
    progress: bool | None,
    executor: Any = None,
) -> SuiteResult:
    ec = sdk.evals
    started = datetime.now(UTC)
    group = resume or new_run_group()
    if suite.dataset:
        ref_name, _, ver = suite.dataset.partition("@")
        ds = ec.get_dataset(ref_name, version=int(ver) if ver.isascii() and ver.isdigit() else None)
        items, ds_name, ds_version = list(ds.items), ds.name, ds.version
    else:
        items = [c.item for c in suite.tests]
        info = ec.add_items(suite.dataset_name, [i.to_dict() for i in items], replace=True, create=True,
                            message=f"tests of suite {suite.name!r} ({Path(suite.path or 'suite').name})")
        ds_name, ds_version = suite.dataset_name, info["version"]
    cfg = suite.run_config()
    if repeat is not None:
        cfg["repetitions"] = repeat

    def scorers_for(item: DatasetItem) -> list[Scorer]:
        out = suite.scorers_for(item)
        use_registry_prompts(out, sdk.prompts)
        return out

    experiments: list[VariantResult] = []
    for v in suite.variants:
        task = build_task(v, suite, base_url=base_url, api_key=api_key, prompt_client=sdk.prompts)
        existing = None
        if resume:
            rows = ec.list_experiments(run_group=group, name=v.name, limit=1, summary="false")
            existing = rows[0]["id"] if rows else None
        runner = Runner(task, [], config=RunConfig(**cfg), recorder=HttpRecorder(ec), client=sdk, progress=progress,
                        name=v.name, executor=executor)  # executor: None is PODIUM_EXECUTOR (docs/ray.md)
        spec = {"id": existing, "dataset_name": ds_name, "dataset_version": ds_version, "run_group": group,
                "metadata": {"suite": suite.name, "suite_file": suite.path, "prompt": v.prompt.label,
                             "provider": v.provider.id, "gates": [g.title for g in suite.gates]}}
        res = runner.run(items, spec, item_scorers=scorers_for, pass_thresholds=suite.pass_thresholds())

        def compare(g: Gate, name: str = v.name, cid: str = res.id) -> tuple[dict[str, Any] | None, str | None]:
            base, why = _baseline_for(ec, g, name, cid)
            if base is None:
                return None, why
            cmp = ec.compare(base["id"], cid, confidence=g.confidence, tolerance=g.tolerance, metrics=g.metrics)
            c = cmp["candidates"][0]
            c["baseline"] = cmp["baseline"]
            return c, f"{base['id']} ({why})"

        verdicts = evaluate_gates(suite.gates, res.summary, compare=compare)
        experiment = res.experiment
        report = None
        if suite.fairness or suite.bbq:
            report = fairness_mod.analyze(res.items, suite.fairness, suite.bbq)
            verdicts += fairness_mod.verdicts(report, suite.fairness, suite.bbq)
            meta = {**(experiment.get("metadata") or {}), "fairness": report}
            experiment = ec.update_experiment(res.id, metadata=meta)  # stored with the experiment: API and UI
        vr: VariantResult = {
            "variant": {"name": v.name, "prompt": v.prompt.label, "provider": v.provider.id,
                        "prompt_text": v.prompt.prompt},
            "experiment": experiment, "items": res.items, "gates": verdicts,
            "passed": all(g["status"] != "failed" for g in verdicts),
        }
        if report is not None:
            vr["fairness"] = report
        experiments.append(vr)
    passed = all(e["passed"] for e in experiments)
    if passed and labels:
        for e in experiments:
            e["experiment"] = ec.update_experiment(e["experiment"]["id"], add_labels=list(labels))
    ended = datetime.now(UTC)
    return {"suite": {"name": suite.name, "path": suite.path, "description": suite.description,
                      "gates": [g.title for g in suite.gates]},
            "run_group": group, "server": base_url, "dataset": {"name": ds_name, "version": ds_version},
            "passed": passed, "started_at": started.isoformat(), "ended_at": ended.isoformat(),
            "duration_s": (ended - started).total_seconds(), "experiments": experiments}

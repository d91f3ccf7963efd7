"""Redaction before storage: what a project's rules cost ingestion.

Two measurements:

1. *The step alone*: ``Redactor.redact_batch`` (podium/governance/redaction.py) on batches of
   realistic spans (bench/_workload.py, ~0.5 KB of JSON each, converted to store rows as the
   server does), one thread: no rules, the presets a typical project sets, and the guardrails'
   Presidio engine (spaCy; on fewer spans: it is slow).
2. *End to end*: ``podium up`` on SQLite in its own process, 2 client threads posting native
   batches of 500 spans for ``--duration`` seconds, with no rules and with the typical rule set
   (alternating runs: none, typical, none, typical).

    .venv/bin/python bench/redaction.py            # writes docs/benchmarks.md
    .venv/bin/python bench/redaction.py --quick    # shorter, prints only
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ServerProcess,
    command_line,
    default_keys,
    header_block,
    machine_facts,
    md_table,
    write_section,
)
from ingest_throughput import PFX, TS, make_templates

SECTION = "Redaction before storage"
TYPICAL: dict[str, Any] = {"rules": [
    {"preset": "credit_card"}, {"preset": "email"}, {"preset": "phone"}, {"preset": "iban"}, {"preset": "api_key"},
    {"path": "metadata.password", "replacement": "[REDACTED:password]"},
    {"path": 'attributes["http.request.header.authorization"]'},
]}
CHEAP: dict[str, Any] = {"rules": [{"preset": "credit_card"}, {"preset": "email"}]}
PRESIDIO: dict[str, Any] = {"rules": [{"scanner": "pii", "engine": "presidio", "entities": ["PERSON", "EMAIL_ADDRESS"]}]}
NOTES = """\
Notes (written by hand; re-check when redaction or the write path changes):

- *The step alone* is single-threaded CPU time per span in the redaction step, rules cached.
  Every string of the span's input, output, metadata, attributes, name and status message is
  read by each text rule (presets skip strings without a digit or an ``@`` where they can).
- *End to end*: the server and the 2 clients share the 2 cores of a machine that runs other
  work; compare the columns of one run, not runs with each other. On a busy machine (the runs of
  2026-12-07 had a load average near 15 on 2 cores: other test suites) the server's rate is far
  below its quiet figure (Ingestion throughput, above) and the difference between the rows is
  noise: the step alone is then the better bound on what the rules cost (1 / its rate of CPU per
  span, on the server's one GIL).
- The Presidio engine (spaCy's small English model) costs milliseconds per string: use it on
  chosen fields (``fields: [input]``) and keep ``max_chars`` (default 20,000 for that engine),
  or prefer the regex presets, which are what a ``preset`` rule runs.
"""


def _rows(n_spans: int, seed: int = 7) -> list[Any]:
    """Store rows of ``n_spans`` realistic spans (one project), as the server builds them."""
    import json

    from podium.core.records import SpanIn
    from podium.server.convert import BatchBuilder

    tpl = make_templates(500, seed, n=max(1, n_spans // 500))
    spans = []
    for i, t in enumerate(tpl):
        body = t.body.replace(PFX.encode(), f"{i:028x}".encode()).replace(TS.encode(), b"2026-01-01T00:00")
        spans += [it["body"] for it in json.loads(body)["batch"]]
    rng = random.Random(seed)
    for s in rng.sample(spans, len(spans) // 20):  # 5% carry something to redact
        s["metadata"] = {**(s.get("metadata") or {}), "password": "hunter2-Secret",
                         "note": "card 4111 1111 1111 1111, mail ana@example.com"}
    from podium.core.pricing import PriceTable

    b = BatchBuilder("p", PriceTable.default)
    for s in spans[:n_spans]:
        b.add_span(SpanIn.model_validate(s))
    return b.batch.spans


class _Repo:
    def __init__(self, doc: dict[str, Any] | None) -> None:
        self.doc = doc

    def get(self, _project_id: str) -> dict[str, Any] | None:
        return self.doc


def step_rate(doc: dict[str, Any] | None, rows: list[Any], rounds: int) -> float:
    from podium.governance.redaction import Redactor
    from podium.governance.redaction_rules import validate_document
    from podium.store.repos.ingest import IngestBatch

    red = Redactor(_Repo(validate_document(doc) if doc else None))  # type: ignore[arg-type]
    red.redact_batch(IngestBatch(spans=copy.deepcopy(rows[:5])))  # compile and warm up (Presidio loads)
    best = 0.0
    for _ in range(rounds):
        batch = IngestBatch(spans=copy.deepcopy(rows))
        t0 = time.perf_counter()
        red.redact_batch(batch)
        best = max(best, len(rows) / (time.perf_counter() - t0))
    return best


def end_to_end(rules: dict[str, Any] | None, duration: float, home: Path) -> float:
    with ServerProcess(home) as srv:
        public, secret = default_keys(home)
        auth = (public, secret)
        with httpx.Client(base_url=srv.url, auth=auth, timeout=60) as c:
            assert c.put("/api/v1/redaction-rules", json=rules or {"rules": []}).status_code == 200
        templates = make_templates(500, 11)
        acked = [0]
        lock = threading.Lock()
        stop = time.monotonic() + duration + 2.0
        start = time.monotonic() + 2.0  # warm-up

        def client(idx: int) -> None:
            n = 0
            with httpx.Client(base_url=srv.url, auth=auth, timeout=60) as c:
                while time.monotonic() < stop:
                    tpl = templates[n % len(templates)]
                    minute = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
                    body = tpl.body.replace(PFX.encode(), f"{idx:04x}{uuid.uuid4().hex[:8]}{n:016x}".encode()).replace(
                        TS.encode(), minute.encode())
                    r = c.post("/api/v1/ingest", content=body, headers={"content-type": "application/json"})
                    n += 1
                    done = time.monotonic()
                    if r.status_code == 200 and start <= done <= stop:
                        with lock:
                            acked[0] += tpl.n_spans

        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return acked[0] / duration


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs; print only")
    ap.add_argument("--duration", type=float, default=None, help="seconds per end-to-end run (default 20, quick 8)")
    args = ap.parse_args()
    duration = args.duration or (8.0 if args.quick else 20.0)
    rows = _rows(2000 if args.quick else 5000)
    step = [("none", step_rate(None, rows, 3)), ("presets card + email", step_rate(CHEAP, rows, 3)),
            ("typical (5 presets + 2 paths)", step_rate(TYPICAL, rows, 3))]
    try:
        step.append(("Presidio engine (PERSON, EMAIL)", step_rate(PRESIDIO, rows[:200], 1)))
    except Exception as e:  # not installed: say so in the table
        step.append((f"Presidio engine: {type(e).__name__}", 0.0))
    for name, rate in step:
        print(f"step alone, {name}: {rate:,.0f} spans/s")
    e2e: dict[str, list[float]] = {"none": [], "typical": []}
    for rnd in range(1 if args.quick else 2):
        for name, rules in (("none", None), ("typical", TYPICAL)):
            with tempfile.TemporaryDirectory() as d:
                rate = end_to_end(rules, duration, Path(d))
            e2e[name].append(rate)
            print(f"end to end, SQLite, rules {name}, run {rnd + 1}: {rate:,.0f} spans/s")
    if args.quick:
        return 0
    none, typ = (sum(v) / len(v) for v in (e2e["none"], e2e["typical"]))
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        "The step alone (one thread, spans/s, best of 3 rounds of 5,000 spans; Presidio: 200 spans):",
        md_table(["rules", "spans/s"], [[n, f"{r:,.0f}"] for n, r in step]),
        f"End to end (`podium up` on SQLite, 2 clients, batches of 500 spans, {duration:.0f} s per run, runs "
        "alternating):",
        md_table(["rules", "spans/s per run", "mean spans/s"],
                 [["none", " / ".join(f"{r:,.0f}" for r in e2e["none"]), f"**{none:,.0f}**"],
                  ["typical (5 presets + 2 paths)", " / ".join(f"{r:,.0f}" for r in e2e["typical"]),
                   f"**{typ:,.0f}** ({(typ / none - 1) * 100:+.0f}%)"]]),
        NOTES,
    ])
    write_section(SECTION, body)
    print(f"\nwrote the '{SECTION}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

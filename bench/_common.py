"""Helpers shared by the benchmarks: machine facts, the docs section writer, a real
`podium up` server in its own process, PostgreSQL schemas, /proc sampling, percentiles.

Everything here only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
DOCS = ROOT / "docs" / "benchmarks.md"
PG_URL = os.environ.get("PODIUM_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
HZ = os.sysconf("SC_CLK_TCK")


# --- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); nan for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# --- machine ---------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def pg_version(url: str = PG_URL) -> str:
    try:
        from sqlalchemy import text

        from podium.store.engine import make_engine

        eng = make_engine(url)
        try:
            with eng.connect() as c:
                return str(c.execute(text("SHOW server_version")).scalar_one()).split()[0]
        finally:
            eng.dispose()
    except Exception as e:  # the report says so rather than failing
        return f"unavailable ({type(e).__name__})"


def machine_facts(with_pg: bool = True) -> dict[str, str]:
    facts = {
        "CPU": f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}",
        "RAM": f"{ram_gib():.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
    }
    if with_pg:
        facts["PostgreSQL"] = pg_version()
    facts["Podium commit"] = git_commit()
    return facts


def git_commit() -> str:
    """HEAD's short hash (read-only git calls), with '+ local changes' when the tree is dirty."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "podium"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in podium/' if dirty else ''}" or "unknown"


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def header_block(facts: dict[str, str], command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"- Date: {when}", *(f"- {k}: {v}" for k, v in facts.items()), f"- Command: `{command}`"]
    return "\n".join(lines)


# --- docs/benchmarks.md ----------------------------------------------------------------------

_DOC_HEAD = (
    "# Benchmarks\n\n"
    "Figures measured by the scripts in `bench/` (see `bench/README.md`). Each script replaces\n"
    "its own `##` section when it runs; other sections are left alone.\n"
)


def write_section(title: str, body: str, path: Path = DOCS) -> None:
    """Replace the ``## {title}`` section of ``path`` (up to the next ``## `` heading), or
    append it. Other sections are kept byte for byte."""
    text = path.read_text() if path.exists() else _DOC_HEAD
    new = f"## {title}\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _m: new + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    tmp.replace(path)


# --- PostgreSQL schemas ----------------------------------------------------------------------


def schema_url(schema: str, base: str = PG_URL) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def create_schema(prefix: str = "bench") -> tuple[str, str]:
    from sqlalchemy import text

    from podium.store.engine import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = make_engine(PG_URL)
    try:
        with eng.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        eng.dispose()
    return schema, schema_url(schema)


def drop_schema(schema: str) -> None:
    from sqlalchemy import text

    from podium.store.engine import make_engine

    eng = make_engine(PG_URL)
    try:
        with eng.begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        eng.dispose()


@contextlib.contextmanager
def pg_schema(prefix: str = "bench") -> Iterator[tuple[str, str]]:
    """A fresh schema (name, url), dropped afterwards."""
    schema, url = create_schema(prefix)
    try:
        yield schema, url
    finally:
        drop_schema(schema)


def import_retry(module: str, attempts: int = 6, wait_s: float = 60.0) -> None:
    """Other people are writing some modules right now: wait a little for them."""
    import importlib

    for i in range(attempts):
        try:
            importlib.import_module(module)
            return
        except ImportError as e:
            if i == attempts - 1:
                raise
            print(f"import {module} failed ({e}); retrying in {wait_s:.0f} s", file=sys.stderr, flush=True)
            time.sleep(wait_s)


# --- /proc -----------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def named_processes_cpu(name: str) -> dict[int, float]:
    """CPU seconds of every process whose comm is ``name`` (e.g. the PostgreSQL backends)."""
    out: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() == name:
                out[int(d.name)] = proc_cpu_seconds(int(d.name))
        except OSError:
            continue
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items() if v == v)


def proc_rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    rss = hwm = float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def system_cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return (total - idle) / HZ, total / HZ


class RssSampler:
    """Samples a process's RSS every ``every`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, _ = proc_rss_mib(self.pid)
            if rss == rss:  # not nan
                self.peak = max(self.peak, rss)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


# --- a real server in its own process --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """``podium up`` (python -m podium.cli up) in a subprocess on 127.0.0.1:<free port>.

    ``database_url`` None means SQLite in ``home``. Server logs go to ``home/server.log``.
    """

    home: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "OTEL_"))}
        env.update({"PODIUM_HOME": str(self.home), "PODIUM_HOST": "127.0.0.1", "PODIUM_PORT": str(self.port)})
        if self.database_url:
            env["PODIUM_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "up", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=str(ROOT),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail_log()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /api/v1/health within {timeout:.0f} s:\n{self.tail_log()}")

    def tail_log(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT (graceful: the ingest writer drains its queue), then SIGKILL if needed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_keys(home: Path) -> tuple[str, str]:
    """(public, secret) from the keys file `podium up` writes on first start."""
    from podium.config import read_keys_file

    keys = read_keys_file(home / "default-keys.env")
    return keys["PODIUM_PUBLIC_KEY"], keys["PODIUM_SECRET_KEY"]


# --- py-spy ----------------------------------------------------------------------------------


def pyspy_path() -> Path | None:
    p = Path(sys.executable).parent / "py-spy"
    return p if p.exists() else None


def start_pyspy(pid: int, out: Path, duration: float, rate: int = 100) -> subprocess.Popen[bytes] | None:
    """Attach py-spy to ``pid`` for ``duration`` s, writing collapsed stacks per thread."""
    exe = pyspy_path()
    if exe is None:
        print("py-spy not installed (.venv/bin/pip install py-spy); no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [str(exe), "record", "--pid", str(pid), "-d", str(max(1, round(duration))), "-r", str(rate),
         "--threads", "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_IDLE_LEAVES = ("Condition.wait (", "Event.wait (", "Queue.get (", "select (", "BaseSelector", "_worker (")
_FRAMEWORK = ("threading.py", "runpy", "typer/", "click/", "uvicorn/", "starlette/", "fastapi/", "asyncio/",
              "anyio/", "contextlib.py", "concurrent/", "<frozen")
# Where a sample's time goes: the leaf-most frame that matches one of these decides.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("JSON encode (store: JSON columns)", ("(json/encoder.py",)),
    ("JSON decode (request body)", ("(json/decoder.py", "loads (json/")),
    ("pydantic validation (records)", ("model_validate (pydantic", "(podium/core/records.py", "(pydantic")),
    ("pricing / token counting", ("(podium/core/pricing.py", "(podium/core/tokens.py", "(tiktoken")),
    ("BatchBuilder (rows)", ("(podium/server/convert.py",)),
    ("DB driver + database wait", ("do_executemany", "do_execute", "do_commit", "(psycopg/", "(sqlite3")),
    ("store: value conversion, dedupe", ("(podium/store/repos/ingest.py",)),
    ("SQLAlchemy", ("(sqlalchemy/",)),
    ("ingest route + response", ("(podium/server/",)),
    ("HTTP / ASGI / event loop", ("(uvicorn/", "(starlette/", "(fastapi/", "(asyncio/", "(httptools", "(h11")),
]


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    f = m.group("file")
    if "/podium/" in f:
        f = "podium/" + f.split("/podium/", 1)[1]
    elif "site-packages/" in f:
        f = f.split("site-packages/", 1)[1]
    elif "/lib/python3" in f:
        f = f.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{m.group('func')} ({f})"


def _category(frames: list[str]) -> str:
    for f in reversed(frames):
        for name, pats in CATEGORIES:
            if any(p in f for p in pats):
                return name
    return "other"


def summarize_pyspy(path: Path, top: int = 14) -> str:
    """Text summary of py-spy collapsed stacks (``--threads -f raw``): per busy thread, where
    its samples go by category, its heaviest functions (inclusive, framework frames hidden)
    and its heaviest leaves. Samples waiting in a queue/condition are dropped as idle."""
    threads: dict[str, dict[str, Any]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n_s = line.rpartition(" ")
        if not stack or not n_s.isdigit():
            continue
        n = int(n_s)
        raw = stack.split(";")
        thread = raw[0] if raw[0].startswith(("thread", "process")) else "all"
        frames = [_short(f) for f in (raw[1:] if thread != "all" else raw)]
        if not frames or frames[-1].startswith(_IDLE_LEAVES):
            continue
        total += n
        t = threads.setdefault(thread, {"n": 0, "incl": {}, "self": {}, "cat": {}})
        t["n"] += n
        for f in set(frames):
            if not any(x in f for x in _FRAMEWORK):
                t["incl"][f] = t["incl"].get(f, 0) + n
        t["self"][frames[-1]] = t["self"].get(frames[-1], 0) + n
        c = _category(frames)
        t["cat"][c] = t["cat"].get(c, 0) + n
    out = [f"py-spy: {total} busy samples in {len(threads)} thread(s) (samples waiting idle are left out)"]
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["n"]):
        if t["n"] < 0.02 * max(total, 1):
            continue
        out.append(f"\n== {name}: {t['n']} samples ({100.0 * t['n'] / max(total, 1):.0f}% of all)")
        out.append("  by category:")
        for f, n in sorted(t["cat"].items(), key=lambda kv: -kv[1]):
            out.append(f"    {100.0 * n / t['n']:5.1f}%  {f}")
        out.append("  inclusive (framework frames hidden):")
        for f, n in sorted(t["incl"].items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"    {100.0 * n / t['n']:5.1f}%  {f}")
        out.append("  self (leaf):")
        for f, n in sorted(t["self"].items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"    {100.0 * n / t['n']:5.1f}%  {f}")
    return "\n".join(out)

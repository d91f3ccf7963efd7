"""Gateway overhead: what the Podium gateway adds to a call, against the same fast fake
upstream called directly, and against the LiteLLM proxy, in one run.

    .venv/bin/python bench/gateway_overhead.py            # 30 s per level (~12 min with LiteLLM)
    .venv/bin/python bench/gateway_overhead.py --quick    # ~5 s per level; prints only
    .venv/bin/python bench/gateway_overhead.py --guarded  # also Podium with the default guardrail policy

Setup (everything on 127.0.0.1, all processes on the same cores):

* upstream: ``tests/gateway/fake_upstream.py`` in its own process (raw ASGI on uvicorn, a fixed
  small chat completion, no artificial delay);
* Podium: ``podium gateway`` in its own process, PODIUM_HOME in a temp dir, SQLite, alias
  ``fake`` -> openai/fake-a at the upstream (``gateway.yaml``), ``PODIUM_GATEWAY_CACHE=off``, a
  ``--role gateway`` key with limits (rpm, tpm, max_parallel, budgets; the project has limits
  too) so auth, the limit reservation and logging every call to SQLite all run;
* LiteLLM: ``litellm --config ... --port ...`` (its CLI, one worker) from its own venv under
  ``bench/.venvs/litellm`` (``pip install 'litellm[proxy]'``, created on first run), one model
  ``fake`` -> ``openai/fake-a`` at the upstream, a master key, no database (so no spend logs);
* load: ``wrk`` (installed with apt-get when missing and possible; else a Python asyncio
  client) in a closed loop with N keep-alive connections, the same small non-streaming body
  for all three targets; streaming time-to-first-token uses the Python client.

Added latency = the gateway's percentile minus the direct percentile at the same concurrency
in the same run. With ``--guarded``, a third arm ``podium+guard`` calls the same Podium process
through alias ``fake-guarded`` (``guardrails: default``: the built-in input and output policy),
and the report adds what the policy costs over plain Podium at each level. Cold start = process start -> first 200 from ``GET /v1/models`` (no model
load). Targets (Podium): added p99 <= 5 ms at 16 and <= 25 ms at 64 connections, >= 3,000
requests/s, RSS < 250 MB, cold start < 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import _common
from bench._common import (
    BENCH,
    OUT,
    ROOT,
    command_line,
    free_port,
    header_block,
    machine_facts,
    md_table,
    percentile,
    proc_cpu_seconds,
    proc_rss_mib,
    pyspy_path,
    summarize_pyspy,
    system_cpu_busy,
    write_section,
)

VENVS = BENCH / ".venvs"
TITLE = "Gateway overhead"
UPSTREAM_KEY = "sk-upstream-fake"
LITELLM_MASTER = "sk-litellm-bench-master"
UPSTREAM_TEXT = "Hello from the fake upstream"
BODY = {
    "model": "fake",
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 16,
    "temperature": 0,
}
# Issue 18 item 4: added p99 <= 5 / 25 ms at 16 / 64 connections, >= 3,000 req/s, peak RSS < 250 MB.
TARGETS = {"p99_16": 5.0, "p99_64": 25.0, "rps": 3000.0, "rss_mb": 250.0, "cold_s": 3.0}
CONTENT_RE = re.compile(rb'"content":\s*"[^"]')

# py-spy categories for the gateway (the leaf-most matching frame decides).
GATEWAY_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("JSON encode/decode", ("(json/",)),
    ("SQLite / SQLAlchemy (ingest writer, spend flush)", ("(sqlite3", "do_execute", "(sqlalchemy/")),
    ("pydantic", ("(pydantic",)),
    ("span building / logging (podium/server/gateway_log.py, ingest)",
     ("(podium/server/gateway_log.py", "(podium/server/ingest.py", "(podium/server/convert.py",
      "(podium/store/")),
    ("limits (podium/gateway/limits*)", ("(podium/gateway/limit", "(podium/gateway/budget")),
    ("auth (podium/server/auth.py)", ("(podium/server/auth.py",)),
    ("pricing / tokens", ("(podium/core/pricing.py", "(podium/core/tokens.py", "(tiktoken")),
    ("gateway service / router / providers", ("(podium/gateway/",)),
    ("gateway endpoint (podium/server/routes/gateway.py)", ("(podium/server/routes/gateway.py",)),
    ("podium (other)", ("(podium/",)),
    ("upstream client (aiohttp, httpx)", ("(aiohttp/", "(httpx/", "(httpcore/", "(h11/", "(anyio/", "(yarl/",
                                           "(multidict/")),
    ("logging module", ("(logging/",)),
    ("uvicorn / starlette / asyncio", ("(uvicorn/", "(starlette/", "(fastapi/", "(asyncio/", "(httptools",
                                       "(uvloop")),
]


# --- processes -------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODIUM_", "OTEL_", "LITELLM_", "DATABASE_URL", "OPENAI_"))}
    env.update(extra)
    return env


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid: int) -> float:
    return sum(c for c in (proc_cpu_seconds(p) for p in tree_pids(pid)) if c == c)


def tree_rss_mib(pid: int) -> float:
    return sum(r for r in (proc_rss_mib(p)[0] for p in tree_pids(pid)) if r == r)


class TreeRss:
    """Peak of the summed RSS of a process tree, sampled every 0.2 s, plus the root's VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid))
            self._stop.wait(0.2)

    def hwm(self) -> float:
        return proc_rss_mib(self.pid)[1]

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(2)
        return max(self.peak, self.hwm() if self.hwm() == self.hwm() else 0.0)


@dataclass
class Proc:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> Proc:
        fh = self.log.open("ab")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=str(ROOT), env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        fh.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, url: str, headers: dict[str, str], timeout: float = 120.0) -> float:
        """Seconds from Popen to the first 200 from ``url`` (polled every 10 ms)."""
        assert self.proc is not None
        deadline = self.started_at + timeout
        with httpx.Client(timeout=2.0) as c:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if c.get(url, headers=headers).status_code == 200:
                        return time.perf_counter() - self.started_at
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT to the process (graceful), then SIGKILL to its own session's group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def run_cli(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-m", "podium.cli", *args], cwd=str(ROOT), env=env, capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"podium {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def cli_json(args: list[str], env: dict[str, str]) -> Any:
    out = run_cli([*args, "--json"], env)
    return json.loads(out[out.index("{"):])


# --- load generators -------------------------------------------------------------------------

WRK_LUA = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.body = [==[%(body)s]==]
    wrk.headers["Content-Type"] = "application/json"
    %(headers)s
    done = function(summary, latency, requests)
      local e = summary.errors
      io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,' ..
        '"write":%%d,"status":%%d,"timeout":%%d,"p50":%%d,"p95":%%d,"p99":%%d,"p999":%%d,"mean":%%.1f,' ..
        '"max":%%d}\\n', summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
        e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
        latency:percentile(99.9), latency.mean, latency.max))
    end
    """
)


def ensure_wrk(allow_install: bool = True) -> str | None:
    """``wrk`` on PATH, installing the Debian package when missing (root + apt-get only)."""
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: apt-get install -y wrk", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "wrk"]):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if cmd[1] == "install" and r.returncode == 0:
                break
    found = shutil.which("wrk")
    if not found:
        print("wrk unavailable: using the Python load generator (more client CPU on the same cores)",
              file=sys.stderr, flush=True)
    return found


@dataclass
class Load:
    """One closed-loop run against one target."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50: float = float("nan")  # ms
    p95: float = float("nan")
    p99: float = float("nan")
    ttft50: float = float("nan")
    ttft95: float = float("nan")
    ttft99: float = float("nan")
    server_cpu: float = float("nan")  # cores
    upstream_cpu: float = float("nan")
    client_cpu: float = float("nan")
    machine_cpu: float = float("nan")
    generator: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_ms_per_req(self) -> float:
        cpu = self.server_cpu if self.server_cpu == self.server_cpu else self.upstream_cpu
        return cpu * 1000 / self.rps if self.rps else float("nan")

    @property
    def other_cpu(self) -> float:
        known = sum(x for x in (self.server_cpu, self.upstream_cpu, self.client_cpu) if x == x)
        return max(0.0, self.machine_cpu - known)

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else float("nan")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wrk_run(wrk: str, url: str, headers: dict[str, str], body: dict[str, Any], conc: int, seconds: float,
            workdir: Path) -> Load:
    lua = workdir / "wrk.lua"
    hdrs = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    lua.write_text(WRK_LUA % {"body": json.dumps(body, separators=(",", ":")), "headers": hdrs})
    threads = 1  # one epoll thread does >50k req/s; a second would only take CPU from the servers
    cmd = [wrk, "-t", str(threads), "-c", str(conc), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(lua), url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in r.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    d = json.loads(line[len("WRKJSON "):])
    errs = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return Load(requests=d["requests"], errors=errs, seconds=d["duration_us"] / 1e6, p50=d["p50"] / 1000,
                p95=d["p95"] / 1000, p99=d["p99"] / 1000, generator="wrk", extra={"wrk": d})


def py_run(url: str, headers: dict[str, str], body: dict[str, Any], conc: int, seconds: float) -> Load:
    cfg = {"url": url, "headers": headers, "body": json.dumps(body, separators=(",", ":")), "conc": conc,
           "seconds": seconds}
    r = subprocess.run([sys.executable, __file__, "--_client", json.dumps(cfg)], capture_output=True, text=True,
                       timeout=seconds + 120)
    if r.returncode != 0:
        raise RuntimeError(f"load client failed:\n{r.stderr[-3000:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    ms = lambda xs, p: percentile(xs, p) * 1000  # noqa: E731
    return Load(requests=d["n"] + d["errors"], errors=d["errors"], seconds=d["seconds"], p50=ms(d["lat"], 50),
                p95=ms(d["lat"], 95), p99=ms(d["lat"], 99), ttft50=ms(d["ttft"], 50), ttft95=ms(d["ttft"], 95),
                ttft99=ms(d["ttft"], 99), generator="python", extra={"statuses": d["statuses"]})


async def _client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop HTTP/1.1 keep-alive client on raw asyncio streams (Content-Length or chunked)."""
    from urllib.parse import urlsplit

    u = urlsplit(cfg["url"])
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, u.path
    body = cfg["body"].encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in cfg["headers"].items())
            + "\r\n").encode()
    req = head + body
    lat: list[float] = []
    ttft: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    pc = time.perf_counter
    t_start = pc()
    deadline = t_start + cfg["seconds"]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, float | None, bool]:
        writer.write(req)
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        low = raw.lower()
        first = None
        m = re.search(rb"content-length:\s*(\d+)", low)
        if m:
            await reader.readexactly(int(m.group(1)))
        elif b"transfer-encoding: chunked" in low:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(size + 2)
                if first is None and CONTENT_RE.search(data):
                    first = pc()
        else:
            await reader.read()
            return status, first, True
        return status, first, b"connection: close" in low

    async def worker() -> None:
        nonlocal errors
        reader = writer = None
        while pc() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                t0 = pc()
                status, first, close = await asyncio.wait_for(one(reader, writer), 30)  # type: ignore[arg-type]
                t1 = pc()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                lat.append(t1 - t0)
                if first is not None:
                    ttft.append(first - t0)
            else:
                errors += 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(cfg["conc"])))
    return {"n": len(lat), "errors": errors, "seconds": pc() - t_start, "lat": lat, "ttft": ttft,
            "statuses": statuses}


def client_main(raw: str) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(_client(json.loads(raw)))))


class Watch:
    """During one run: peak RSS of the server's tree and, for Podium, the peak ingest backlog
    (``ingest.pending`` of /api/v1/health) and the peak bytes its span log held
    (``podium_gateway_log_bytes``), every 0.5 s."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.rss = 0.0
        self.pending = -1
        self.log_bytes = -1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=2.0) as c:
            while not self._stop.is_set():
                self.rss = max(self.rss, tree_rss_mib(self.target.pid or 0))
                if self.target.name == "podium":
                    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                        p = int(c.get(self.target.base + "/api/v1/health").json()["ingest"]["pending"])
                        self.pending = max(self.pending, p)
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        for line in c.get(self.target.base + "/metrics").text.splitlines():
                            if line.startswith("podium_gateway_log_bytes "):
                                self.log_bytes = max(self.log_bytes, float(line.split()[1]))
                self._stop.wait(0.5)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(3)
        out: dict[str, Any] = {"rss_peak": self.rss}
        if self.pending >= 0:
            out["pending_peak"] = self.pending
        if self.log_bytes >= 0:
            out["log_bytes_peak"] = self.log_bytes
        return out


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:port
    headers: dict[str, str]
    pid: int | None  # server process (None: the upstream itself)
    model: str = "fake"  # the alias called (podium+guard: fake-guarded)


def measure(target: Target, upstream_pid: int, conc: int, seconds: float, warmup: float, wrk: str | None,
            workdir: Path, stream: bool = False, quiet: tuple[list[int], float] | None = None) -> Load:
    url = target.base + "/v1/chat/completions"
    body = {**BODY, "model": target.model, **({"stream": True} if stream else {})}

    def go(secs: float) -> Load:
        if wrk and not stream:
            return wrk_run(wrk, url, target.headers, body, conc, secs, workdir)
        return py_run(url, target.headers, body, conc, secs)

    if quiet is not None:
        wait_quiet(*quiet)
    if warmup > 0:
        go(warmup)
    watch = Watch(target) if target.pid else None
    s_cpu = tree_cpu(target.pid) if target.pid else 0.0
    u_cpu = proc_cpu_seconds(upstream_pid)
    c_cpu = _children_cpu()
    m_busy, m_total = system_cpu_busy()
    t0 = time.perf_counter()
    res = go(seconds)
    wall = time.perf_counter() - t0
    if watch is not None:
        res.extra.update(watch.stop())
    m_busy2, m_total2 = system_cpu_busy()
    res.server_cpu = (tree_cpu(target.pid) - s_cpu) / wall if target.pid else float("nan")
    res.upstream_cpu = (proc_cpu_seconds(upstream_pid) - u_cpu) / wall
    res.client_cpu = (_children_cpu() - c_cpu) / wall
    ncpu = len(os.sched_getaffinity(0))
    res.machine_cpu = (m_busy2 - m_busy) / max(m_total2 - m_total, 1e-9) * ncpu
    return res


def other_cpu(pids: list[int], seconds: float = 1.0) -> float:
    """Cores used over ``seconds`` by processes outside the trees of ``pids`` (other people's work)."""
    ours0 = sum(tree_cpu(p) for p in pids)
    b0, t0 = system_cpu_busy()
    time.sleep(seconds)
    b1, t1 = system_cpu_busy()
    ours1 = sum(tree_cpu(p) for p in pids)
    ncpu = len(os.sched_getaffinity(0))
    return (b1 - b0) / max(t1 - t0, 1e-9) * ncpu - (ours1 - ours0) / seconds


QUIET = {"waited": 0.0, "gave_up": 0}
REDONE: list[str] = []


def wait_quiet(pids: list[int], max_wait: float, threshold: float = 0.25) -> None:
    """Before a run: wait (up to ``max_wait`` s) until other processes use < ``threshold`` cores."""
    t0 = time.monotonic()
    while True:
        o = other_cpu(pids)
        if o < threshold:
            break
        if time.monotonic() - t0 > max_wait:
            QUIET["gave_up"] += 1
            print(f"machine still busy ({o:.2f} cores used by other processes); measuring anyway", flush=True)
            break
    QUIET["waited"] += time.monotonic() - t0


def check_answer(target: Target) -> None:
    r = httpx.post(target.base + "/v1/chat/completions", json={**BODY, "model": target.model},
                   headers=target.headers, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"{target.name}: {r.status_code} {r.text[:500]}")
    content = r.json()["choices"][0]["message"]["content"]
    if content != UPSTREAM_TEXT:
        raise RuntimeError(f"{target.name}: unexpected answer {content!r}")


# --- the three targets -----------------------------------------------------------------------


def start_upstream(tmp: Path) -> tuple[Proc, str]:
    port = free_port()
    p = Proc("fake upstream", [sys.executable, "tests/gateway/fake_upstream.py", str(port)], child_env(),
             tmp / "upstream.log").start()
    base = f"http://127.0.0.1:{port}"
    p.wait_ready(base + "/v1/models", {}, timeout=30)
    return p, base


@dataclass
class PodiumSetup:
    home: Path
    env: dict[str, str]
    key: str  # the gateway key's secret (Bearer)
    public_key: str


def podium_env(home: Path, port: int) -> dict[str, str]:
    return child_env(PODIUM_HOME=str(home), PODIUM_HOST="127.0.0.1", PODIUM_PORT=str(port),
                     PODIUM_GATEWAY_CACHE="off", BENCH_UPSTREAM_KEY=UPSTREAM_KEY)


def podium_setup(tmp: Path, upstream: str, guarded: bool = False) -> PodiumSetup:
    """Home with gateway.yaml; project + gateway key through the CLI; limits through
    `podium limits set` against a short-lived `podium up` (the admin API)."""
    home = tmp / "podium-home"
    home.mkdir()
    (home / "gateway.yaml").write_text(textwrap.dedent(f"""\
        models:
          - name: fake
            deployments:
              - {{provider: openai, model: fake-a, api_base: "{upstream}/v1", api_key: "env:BENCH_UPSTREAM_KEY"}}
        """) + (textwrap.indent(textwrap.dedent(f"""\
          - name: fake-guarded
            guardrails: default
            deployments:
              - {{provider: openai, model: fake-a, api_base: "{upstream}/v1", api_key: "env:BENCH_UPSTREAM_KEY"}}
        """), "  ") if guarded else ""))
    port = free_port()
    env = podium_env(home, port)
    proj = cli_json(["projects", "create", "bench"], env)
    key = cli_json(["keys", "create", "--project", "bench", "--role", "gateway", "--note", "gateway bench"], env)
    up = Proc("podium up (setup)", [sys.executable, "-m", "podium.cli", "up", "--host", "127.0.0.1", "--port",
                                    str(port)], env, tmp / "podium-setup.log").start()
    try:
        up.wait_ready(f"http://127.0.0.1:{port}/api/v1/health", {}, timeout=120)
        admin = {**env, "PODIUM_BASE_URL": f"http://127.0.0.1:{port}",
                 "PODIUM_PUBLIC_KEY": proj["public_key"], "PODIUM_SECRET_KEY": proj["secret_key"]}
        big = "1000000000"
        run_cli(["limits", "set", "--key", key["public_key"], "--rpm", big, "--tpm", "1000000000000",
                 "--max-parallel", "100000", "--budget-daily", big, "--budget-monthly", big,
                 "--budget-total", big], admin)
        run_cli(["limits", "set", "--rpm", big, "--tpm", "1000000000000", "--budget-monthly", big], admin)
    finally:
        up.stop()
    return PodiumSetup(home=home, env=env, key=key["secret_key"], public_key=key["public_key"])


# `--gc-stats`: the same CLI, with a gc callback timing every collection; the figures are written at exit.
GC_WRAPPER = textwrap.dedent(
    """
    import atexit, gc, json, os, sys, time
    pauses, t = {0: [], 1: [], 2: []}, [0.0]
    def cb(phase, info):
        if phase == "start":
            t[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - t[0])
    gc.callbacks.append(cb)
    def dump():
        out = {}
        for g, v in pauses.items():
            v.sort()
            out[g] = {"n": len(v), "total_s": sum(v), "max_ms": 1000 * v[-1] if v else 0.0,
                      "p99_ms": 1000 * v[int(len(v) * 0.99)] if v else 0.0}
        with open(os.environ["BENCH_GC_STATS"], "w") as fh:
            json.dump(out, fh)
    atexit.register(dump)
    sys.argv = ["podium", *sys.argv[1:]]
    from podium.cli.main import main
    main()
    """
)


def podium_proc(ps: PodiumSetup, tmp: Path, command: str = "gateway", gc_stats: Path | None = None
                ) -> tuple[Proc, Target]:
    port = free_port()
    env = {**ps.env, "PODIUM_PORT": str(port)}
    head = [sys.executable, "-m", "podium.cli"]
    if gc_stats is not None:
        env["BENCH_GC_STATS"] = str(gc_stats)
        head = [sys.executable, "-c", GC_WRAPPER]
    p = Proc(f"podium {command}", [*head, command, "--host", "127.0.0.1", "--port", str(port)], env,
             tmp / f"podium-{command}.log")
    return p, Target("podium", f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {ps.key}"}, None)


def litellm_python() -> Path:
    path = VENVS / "litellm"
    py = path / "bin" / "python"
    stamp = path / ".bench-installed"
    if not stamp.exists():
        print("creating bench/.venvs/litellm: pip install 'litellm[proxy]' (a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
        stamp.write_text("litellm[proxy]")
    return py


def litellm_version(py: Path) -> str:
    r = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def litellm_proc(py: Path, tmp: Path, upstream: str) -> tuple[Proc, Target]:
    cfg = tmp / "litellm.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        model_list:
          - model_name: fake
            litellm_params:
              model: openai/fake-a
              api_base: "{upstream}/v1"
              api_key: "{UPSTREAM_KEY}"
        general_settings:
          master_key: "{LITELLM_MASTER}"
          disable_spend_logs: true
        """))
    port = free_port()
    exe = py.parent / "litellm"
    env = child_env(LITELLM_LOCAL_MODEL_COST_MAP="True")  # offline: the bundled price map
    p = Proc("litellm", [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                         "--num_workers", "1"], env, tmp / "litellm.log")
    return p, Target("litellm", f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {LITELLM_MASTER}"}, None)


def cold_starts(make: Any, runs: int, label: str, quiet: tuple[list[int], float] | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        if quiet is not None:
            wait_quiet(*quiet)
        p, t = make()
        p.start()
        try:
            out.append(p.wait_ready(t.base + "/v1/models", t.headers))
        finally:
            p.stop()
        print(f"cold start {label}: {out[-1]:.2f} s", flush=True)
    return out


def scrape_metrics(base: str) -> dict[str, float]:
    """Sums of a few Podium gateway counters from /metrics."""
    try:
        text = httpx.get(base + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in ("podium_gateway_requests_total", "podium_gateway_log_dropped_total",
                    "podium_gateway_limit_rejections_total", "podium_gateway_log_waits_total",
                    "podium_gateway_log_wait_seconds_total"):
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def podium_written(base: str, wait_s: float = 15.0) -> dict[str, Any]:
    """The ingest counters from /api/v1/health once the queue is empty."""
    deadline = time.monotonic() + wait_s
    h: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            h = httpx.get(base + "/api/v1/health", timeout=5).json().get("ingest", {})
            if not h.get("pending"):
                break
        time.sleep(0.5)
    return h


# --- report ----------------------------------------------------------------------------------


def f1(x: float) -> str:
    return "-" if x != x else f"{x:.1f}"


def f2(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b <= 0:
        return "-"
    return f"{a / b:.1f}x"


def mib_to_mb(x: float) -> float:
    return x * 1.048576


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s per level, 1 s warm-up, 2 cold starts; prints only")
    ap.add_argument("--duration", type=float, help="seconds per measured run (default 30, quick 5)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up before each run (default 3, quick 1)")
    ap.add_argument("--levels", default="1,16,64", help="concurrency levels (connections)")
    ap.add_argument("--cold-runs", type=int, help="cold starts per server (default 5, quick 2)")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    ap.add_argument("--no-stream", action="store_true", help="skip the streaming TTFT runs")
    ap.add_argument("--guarded", action="store_true", help="also measure Podium with the built-in default "
                    "guardrail policy (arm podium+guard: same process, alias fake-guarded)")
    ap.add_argument("--quiet-wait", type=float, help="before each run, wait up to this many seconds for other "
                    "processes on the machine to go quiet (default 120, quick 10)")
    ap.add_argument("--redo", type=int, default=1, help="times a run is repeated when other processes used "
                    "≥ 0.3 cores during it (the calmer run is kept; default 1)")
    ap.add_argument("--gc-stats", action="store_true", help="run Podium through a wrapper that times every "
                    "garbage collection (gc.callbacks) and report the pauses")
    ap.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                    help="py-spy the Podium gateway in an extra run at the top level (auto: when a target is missed)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--_client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._client:
        client_main(args._client)
        return
    duration = args.duration or (5.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    cold_runs = args.cold_runs or (2 if args.quick else 5)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (10.0 if args.quick else 120.0)
    write_docs = (not args.quick or args.write_docs) and not args.no_docs
    wrk = None if args.loadgen == "python" else ensure_wrk()
    if args.loadgen == "wrk" and not wrk:
        sys.exit("wrk is not available")
    _common.import_retry("podium.gateway.service", attempts=3, wait_s=30)
    lpy = None if args.no_litellm else litellm_python()
    OUT.mkdir(parents=True, exist_ok=True)

    results: dict[tuple[str, int], Load] = {}
    stream: dict[str, Load] = {}
    cold: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    idle_rss: dict[str, float] = {}
    extra_notes: list[str] = []
    profile_text = ""
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp_s:
        tmp = Path(tmp_s)
        upstream, up_base = start_upstream(tmp)
        procs: list[Proc] = [upstream]
        try:
            gc_file = None
            direct = Target("direct", up_base, {"Authorization": f"Bearer {UPSTREAM_KEY}"}, None)
            ps = podium_setup(tmp, up_base, guarded=args.guarded)
            cq = ([os.getpid(), upstream.pid], quiet_wait)
            cold["podium gateway"] = cold_starts(lambda: podium_proc(ps, tmp, "gateway"), cold_runs,
                                                 "podium gateway", cq)
            cold["podium up"] = cold_starts(lambda: podium_proc(ps, tmp, "up"), cold_runs, "podium up", cq)
            if lpy:
                cold["litellm"] = cold_starts(lambda: litellm_proc(lpy, tmp, up_base), cold_runs, "litellm", cq)

            # Both gateways up for the whole load phase; levels interleave direct / podium / litellm.
            targets = [direct]
            samplers: dict[str, TreeRss] = {}
            gc_file = tmp / "podium-gc.json" if args.gc_stats else None
            makers = [("podium", lambda: podium_proc(ps, tmp, "gateway", gc_file))]
            if lpy:
                makers.append(("litellm", lambda: litellm_proc(lpy, tmp, up_base)))
            for name, make in makers:
                p, t = make()
                procs.append(p.start())
                p.wait_ready(t.base + "/v1/models", t.headers)
                t.pid = p.pid
                check_answer(t)
                time.sleep(1.0)
                idle_rss[name] = tree_rss_mib(p.pid)
                samplers[name] = TreeRss(p.pid)
                targets.append(t)
                if name == "podium" and args.guarded:
                    g = Target("podium+guard", t.base, t.headers, t.pid, model="fake-guarded")
                    check_answer(g)
                    targets.append(g)
            check_answer(direct)
            podium_t = targets[1]
            quiet = ([os.getpid(), *(p.pid for p in procs)], quiet_wait)
            before = scrape_metrics(podium_t.base)
            for conc in levels:
                for t in targets:
                    res = measure(t, upstream.pid, conc, duration, warmup, wrk, tmp, quiet=quiet)
                    for _ in range(args.redo):  # other processes disturbed the run: do it again, keep the calmer
                        if res.other_cpu < 0.3:
                            break
                        print(f"c={conc} {t.name}: other processes used {res.other_cpu:.2f} cores; again", flush=True)
                        REDONE.append(f"{t.name} c={conc}")
                        again = measure(t, upstream.pid, conc, duration, warmup, wrk, tmp, quiet=quiet)
                        res = again if again.other_cpu < res.other_cpu else res
                    results[(t.name, conc)] = res
                    print(f"c={conc:<3} {t.name:<8} {res.rps:8.0f} req/s  p50 {res.p50:7.2f}  p95 {res.p95:7.2f}  "
                          f"p99 {res.p99:7.2f} ms  errors {res.errors}  server {f2(res.server_cpu)} "
                          f"upstream {f2(res.upstream_cpu)} client {f2(res.client_cpu)} machine "
                          f"{f2(res.machine_cpu)} (other {f2(res.other_cpu)}) cores  {_watch_text(res)}", flush=True)
            if not args.no_stream:
                conc = 16
                for t in targets:
                    res = measure(t, upstream.pid, conc, max(5.0, duration / 2), warmup, None, tmp, stream=True,
                                  quiet=quiet)
                    stream[t.name] = res
                    print(f"stream c={conc} {t.name:<8} {res.rps:8.0f} req/s  TTFT p50 {res.ttft50:7.2f} p95 "
                          f"{res.ttft95:7.2f} p99 {res.ttft99:7.2f} ms  total p50 {res.p50:7.2f} ms  errors "
                          f"{res.errors}", flush=True)
            for name, s in samplers.items():
                rss[name] = s.stop()
            after = scrape_metrics(podium_t.base)
            ing = podium_written(podium_t.base)
            served = after.get("podium_gateway_requests_total", 0.0) - before.get("podium_gateway_requests_total", 0.0)
            extra_notes.append(
                f"Podium logging check: {served:,.0f} gateway requests counted by `/metrics` during the load "
                f"phase; the ingest writer had written {ing.get('written', '?'):,} items in total (a span and its trace "
                f"per call) "
                f"(pending {ing.get('pending', '?')}, write errors {ing.get('write_errors', '?')}); "
                f"`podium_gateway_log_dropped_total` = {after.get('podium_gateway_log_dropped_total', 0):,.0f}; "
                f"calls that waited for room in the span log (back-pressure): "
                f"{after.get('podium_gateway_log_waits_total', 0) - before.get('podium_gateway_log_waits_total', 0):,.0f}"
                f" ({after.get('podium_gateway_log_wait_seconds_total', 0) - before.get('podium_gateway_log_wait_seconds_total', 0):,.1f}"
                " s waited in all); "
                f"limit rejections = {after.get('podium_gateway_limit_rejections_total', 0):,.0f}."
                if ing else "Podium logging check: /api/v1/health did not answer."
            )

            missed = _missed(results, rss, cold, levels)
            want_profile = args.profile == "always" or (args.profile == "auto" and missed)
            if want_profile and pyspy_path() is not None:
                top = max(levels)
                pdur = min(duration, 20.0)
                out = OUT / "gateway-overhead-pyspy.txt"
                spy = _common.start_pyspy(podium_t.pid or 0, out, pdur + 1, rate=200)
                time.sleep(0.5)
                prof = measure(podium_t, upstream.pid, top, pdur, 0, wrk, tmp)
                extra_notes.append(f"Profiled run (py-spy attached, not in the tables): {prof.rps:,.0f} req/s, "
                                   f"p99 {prof.p99:.1f} ms, gateway CPU {prof.server_cpu:.2f} cores.")
                if spy is not None:
                    spy.wait(60)
                    saved = _common.CATEGORIES
                    _common.CATEGORIES = GATEWAY_CATEGORIES
                    try:
                        profile_text = summarize_pyspy(out, top=18)
                    finally:
                        _common.CATEGORIES = saved
                    profile_text = (f"py-spy (200 Hz, {pdur:.0f} s, `--threads`) of `podium gateway` at c={top} "
                                    f"under load ({prof.rps:,.0f} req/s while sampled; raw stacks in "
                                    f"`bench/out/{out.name}`):\n\n" + profile_text)
                    print(profile_text, flush=True)
            elif want_profile:
                extra_notes.append("A target was missed but py-spy is not installed (.venv/bin/pip install py-spy): "
                                   "no profile.")
        finally:
            for p in reversed(procs):
                p.stop()
            if args.gc_stats and gc_file is not None and gc_file.exists():
                g = json.loads(gc_file.read_text())
                extra_notes.append(
                    "Podium garbage collector over the whole load phase (`--gc-stats`): " + "; ".join(
                        f"gen{k}: {v['n']:,} collections, {v['total_s']:.2f} s in all, p99 {v['p99_ms']:.1f} ms, "
                        f"max {v['max_ms']:.1f} ms" for k, v in sorted(g.items())))
                print(extra_notes[-1], flush=True)

    body = report(args, results, stream, cold, rss, idle_rss, levels, duration, warmup, wrk, lpy, extra_notes,
                  profile_text)
    print("\n" + body)
    if write_docs:
        write_section(TITLE, body)
        print(f"\nwrote the '{TITLE}' section of docs/benchmarks.md")


def _watch_text(r: Load) -> str:
    parts = []
    if "rss_peak" in r.extra:
        parts.append(f"RSS peak {r.extra['rss_peak']:.0f} MiB")
    if "pending_peak" in r.extra:
        parts.append(f"ingest backlog peak {r.extra['pending_peak']:,}")
    if "log_bytes_peak" in r.extra:
        parts.append(f"span log peak {r.extra['log_bytes_peak'] / 2**20:.1f} MiB")
    return ", ".join(parts) or "-"


def _added(results: dict[tuple[str, int], Load], name: str, conc: int, attr: str) -> float:
    g, d = results.get((name, conc)), results.get(("direct", conc))
    if g is None or d is None:
        return float("nan")
    return float(getattr(g, attr)) - float(getattr(d, attr))


def _verdicts(results: dict[tuple[str, int], Load], rss: dict[str, float], cold: dict[str, list[float]],
              levels: list[int]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for conc, key in ((16, "p99_16"), (64, "p99_64")):
        if conc in levels:
            a = _added(results, "podium", conc, "p99")
            out.append((f"added p99 ≤ {TARGETS[key]:.0f} ms at {conc} connections", a <= TARGETS[key],
                        f"{a:.2f} ms"))
    best = max((r.rps for (n, _), r in results.items() if n == "podium"), default=float("nan"))
    at = max((c for (n, c), r in results.items() if n == "podium" and r.rps == best), default=0)
    out.append((f"≥ {TARGETS['rps']:,.0f} requests/s", best >= TARGETS["rps"], f"{best:,.0f} req/s (at c={at})"))
    if "podium" in rss:
        mb = mib_to_mb(rss["podium"])
        out.append((f"RSS < {TARGETS['rss_mb']:.0f} MB", mb < TARGETS["rss_mb"],
                    f"peak {rss['podium']:.0f} MiB = {mb:.0f} MB"))
    if cold.get("podium gateway"):
        med = statistics.median(cold["podium gateway"])
        out.append((f"cold start < {TARGETS['cold_s']:.0f} s (`podium gateway`)", med < TARGETS["cold_s"],
                    f"median {med:.2f} s"))
    if cold.get("podium up"):
        med = statistics.median(cold["podium up"])
        out.append((f"cold start < {TARGETS['cold_s']:.0f} s (`podium up`, for reference)", med < TARGETS["cold_s"],
                    f"median {med:.2f} s"))
    return out


def _missed(results: dict[tuple[str, int], Load], rss: dict[str, float], cold: dict[str, list[float]],
            levels: list[int]) -> bool:
    return any(ok is False for _, ok, _ in _verdicts(results, rss, cold, levels))


def report(args: argparse.Namespace, results: dict[tuple[str, int], Load], stream: dict[str, Load],
           cold: dict[str, list[float]], rss: dict[str, float], idle_rss: dict[str, float], levels: list[int],
           duration: float, warmup: float, wrk: str | None, lpy: Path | None, notes: list[str],
           profile_text: str) -> str:
    facts = machine_facts(with_pg=False)
    if wrk:
        facts["Load generator"] = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split(
            " Copyright")[0].strip() or "wrk"
    else:
        facts["Load generator"] = "Python asyncio client (wrk unavailable)"
    if lpy:
        facts["LiteLLM"] = litellm_version(lpy)
    guarded = any(n == "podium+guard" for n, _ in results)
    names = ["direct", "podium"] + (["podium+guard"] if guarded else []) + (["litellm"] if lpy else [])
    if guarded:
        notes.append("Guardrails (`--guarded`): the built-in `default` policy on (alias `fake-guarded`, same "
                     "process, same run) adds over plain Podium " + "; ".join(
                         f"c={c}: p50 {f2(results[('podium+guard', c)].p50 - results[('podium', c)].p50)} ms, "
                         f"p99 {f2(results[('podium+guard', c)].p99 - results[('podium', c)].p99)} ms"
                         for c in levels if ('podium+guard', c) in results and ('podium', c) in results) + ".")
    rows = []
    for conc in levels:
        for n in names:
            r = results.get((n, conc))
            if r is None:
                continue
            added = [_added(results, n, conc, a) for a in ("p50", "p95", "p99")] if n != "direct" else [float("nan")] * 3
            rows.append([
                n if n != "podium" else "**podium**", conc, f"{r.rps:,.0f}", f2(r.p50), f2(r.p95), f2(r.p99),
                *(f2(a) for a in added), r.errors, f2(r.server_cpu), f"{1000 * r.cpu_ms_per_req:.0f}",
                f2(r.upstream_cpu), f2(r.client_cpu),
                f2(r.machine_cpu), f2(r.other_cpu), _watch_text(r),
            ])
    main_table = md_table(["target", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "added p50", "added p95",
                           "added p99", "errors", "gateway CPU", "CPU µs/req", "upstream CPU", "client CPU", "machine CPU (of 2)",
                           "other processes CPU", "during the run"],
                          rows)
    cmp_rows = []
    if lpy:
        for conc in levels:
            p, lt = results.get(("podium", conc)), results.get(("litellm", conc))
            if p is None or lt is None:
                continue
            cmp_rows.append([
                conc, f"{p.rps:,.0f} / {lt.rps:,.0f}", ratio(p.rps, lt.rps),
                f"{_added(results, 'podium', conc, 'p50'):.2f} / {_added(results, 'litellm', conc, 'p50'):.2f}",
                ratio(_added(results, "litellm", conc, "p50"), _added(results, "podium", conc, "p50")),
                f"{_added(results, 'podium', conc, 'p99'):.2f} / {_added(results, 'litellm', conc, 'p99'):.2f}",
                ratio(_added(results, "litellm", conc, "p99"), _added(results, "podium", conc, "p99")),
            ])
    cmp_table = md_table(["conns", "req/s Podium / LiteLLM", "Podium throughput ×", "added p50 ms Podium / LiteLLM",
                          "LiteLLM adds × more (p50)", "added p99 ms Podium / LiteLLM", "LiteLLM adds × more (p99)"],
                         cmp_rows) if cmp_rows else ""
    mem_rows = []
    for n, label in (("podium", "Podium (`podium gateway`)"), ("litellm", "LiteLLM proxy")):
        if n in rss:
            mem_rows.append([label, f"{idle_rss.get(n, float('nan')):.0f}", f"{rss[n]:.0f}",
                             f"{mib_to_mb(rss[n]):.0f}"])
    mem_table = md_table(["server", "RSS after start MiB", "peak RSS under load MiB", "peak MB"], mem_rows)
    cold_rows = []
    for n, xs in cold.items():
        cold_rows.append([f"`{n}`" if n.startswith("podium") else "`litellm --config`", f"{statistics.median(xs):.2f}",
                          f"{min(xs):.2f}", f"{max(xs):.2f}", ", ".join(f"{x:.2f}" for x in xs)])
    cold_table = md_table(["server", "median s", "min s", "max s", "runs"], cold_rows)
    stream_table = ""
    if stream:
        srows = []
        d = stream.get("direct")
        for n in names:
            s = stream.get(n)
            if s is None:
                continue
            adds = [f2(getattr(s, a) - getattr(d, a)) if (d and n != "direct") else "-"
                    for a in ("ttft50", "ttft95", "ttft99")]
            srows.append([n, f"{s.rps:,.0f}", f2(s.ttft50), f2(s.ttft95), f2(s.ttft99), *adds, f2(s.p50),
                          s.errors])
        stream_table = md_table(["target", "req/s", "TTFT p50 ms", "TTFT p95 ms", "TTFT p99 ms", "added p50",
                                 "added p95", "added p99", "whole stream p50 ms", "errors"], srows)
    verdicts = _verdicts(results, rss, cold, levels)
    vlines = [f"- {name}: **{'met' if ok else 'NOT met'}** ({val})" for name, ok, val in verdicts]
    gen = "wrk (1 thread, N keep-alive connections)" if wrk else "a Python asyncio client in its own process"
    setup = (
        f"Closed loop, {gen}, {duration:.0f} s per run after {warmup:.0f} s of warm-up, the same non-streaming "
        f"body for every target (`{json.dumps(BODY)}`; the upstream answers a fixed 5-word completion with usage "
        "at once). Levels interleave direct / Podium / LiteLLM; both gateways run for the whole load phase. "
        "**Everything shares the 2 cores**: the fake upstream (uvicorn + uvloop, one process), the gateway under "
        "test, and the load generator; the CPU columns say who used what (cores, averaged over the run); "
        "CPU µs/req = the gateway's (for direct: the upstream's) CPU time per answered request, which other load "
        "on the machine disturbs less than latency. "
        "Added latency = gateway percentile − direct percentile at the same concurrency. "
        "Podium: `podium gateway` (one process, SQLite in a temp PODIUM_HOME, alias `fake` from `gateway.yaml`, "
        "`PODIUM_GATEWAY_CACHE=off`), called with a `--role gateway` key that has rpm/tpm/max_parallel/budget "
        "limits (and the project has limits too): auth, the limit reservation and settlement, and logging every "
        "call as a span to SQLite are all on. LiteLLM: `litellm --config litellm.yaml --num_workers 1` from "
        "`bench/.venvs/litellm` (`pip install 'litellm[proxy]'`), model `fake` → `openai/fake-a`, a master key, "
        "no database (its default minimal setup: no virtual keys, no limits, no spend logs; uvicorn's access log "
        "on, as its CLI sets it up), `LITELLM_LOCAL_MODEL_COST_MAP=True` (offline)."
    )
    parts = [
        header_block(facts, command_line()),
        setup,
        "### Non-streaming chat completions\n\n" + main_table,
    ]
    if cmp_table:
        parts.append("### Podium vs LiteLLM\n\n" + cmp_table + "\n\nThroughput × = Podium req/s ÷ LiteLLM req/s; "
                     "\"LiteLLM adds × more\" = LiteLLM's added latency ÷ Podium's.")
    parts.append("### Memory\n\n" + mem_table + "\n\nPeak = highest summed RSS of the server's process tree "
                 "sampled every 0.2 s over the load phase (and the root's VmHWM). The \"during the run\" column of "
                 "the first table gives each run's RSS peak and, for Podium, the peak ingest backlog (rows queued "
                 "for the SQLite writer, from `/api/v1/health`) and the peak memory its span log held "
                 "(`podium_gateway_log_bytes`, bounded at 16 MiB: when calls come faster than the writer stores "
                 "their spans, new calls wait for room rather than the backlog growing; docs/gateway.md#what-is-logged).")
    parts.append("### Cold start\n\nFrom `Popen` to the first 200 answer of `GET /v1/models` (with the key; "
                 "polled every 10 ms), no model load, on an existing PODIUM_HOME (the database already migrated); "
                 "each start waits for the machine to be quiet first."
                 "\n\n" + cold_table)
    if stream_table:
        parts.append("### Streaming, 16 connections\n\nTime to the first chunk carrying content "
                     "(`stream: true`, Python asyncio client for every target, "
                     f"{max(5.0, duration / 2):.0f} s).\n\n" + stream_table)
    little = []
    for conc, key in ((16, "p99_16"), (64, "p99_64")):
        d = results.get(("direct", conc))
        if d is not None:
            need = conc / ((d.p50 + TARGETS[key]) / 1000)
            little.append(f"c={conc}: ≥ {need:,.0f} req/s")
    if little:
        vlines.append(
            "- Reading the latency targets: in a closed loop, latency ≈ connections ÷ throughput (Little's law), "
            "so an added p99 within target at 16 / 64 connections also needs about "
            + "; ".join(little) + " sustained, with no pause longer than the budget (GC, the log writer)."
        )
    parts.append("### Targets (Podium, auth + limits + logging on)\n\n" + "\n".join(vlines))
    notes = [*notes, f"Before each run the harness waited for other processes to use < 0.25 cores (this machine "
             f"is shared): {QUIET['waited']:.0f} s waited in all, {QUIET['gave_up']} run(s) started anyway after "
             "the wait limit. The \"other processes CPU\" column is what they still used during each run; a run "
             f"where they used ≥ 0.3 cores was done again and the calmer one kept ({', '.join(REDONE) or 'none'})."]
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes))
    if profile_text:
        parts.append("### Profile\n\n```text\n" + profile_text + "\n```")
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()

"""`podium tune export`: production traces as SFT, DPO or KTO training data (through the REST
API; see docs/training-data.md). `podium tune sft|dpo RECIPE.yaml`: a LoRA fine-tuning run
(:func:`podium.tune.trainer.train`) on the recipe's data, tracked on the server through
:class:`~podium.cli.run_tracker.RunTracker`, with a progress bar, Ctrl-C or a cancel from the
UI as a checkpointed stop, ``--resume`` and ``--detach`` (docs/fine-tuning.md)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from podium.cli._common import api_call, api_client, console, err_console, print_json
from podium.cli.commands.tune_package import package_cmd
from podium.cli.commands.tune_runs import runs_app, sweeps_app
from podium.cli.commands.tune_sweep import sweep_cmd
from podium.config import Settings
from podium.errors import PodiumError
from podium.tune.export import write_jsonl
from podium.tune.trainer import train

if TYPE_CHECKING:
    from podium.cli.run_tracker import RunTracker
    from podium.tune.recipe import TuneRecipe
    from podium.tune.trainer import StepLog, TrainResult

__all__ = ["tune_app"]

tune_app = typer.Typer(help="Training data and fine-tuning from production traces.", no_args_is_help=True)
tune_app.command("sweep")(sweep_cmd)
tune_app.command("package")(package_cmd)  # GGUF + quantization + registry versions (docs/registry.md)
tune_app.add_typer(runs_app, name="runs")  # tracked runs (docs/training-runs.md)
tune_app.add_typer(sweeps_app, name="sweeps")

_NUMERIC = {"min_latency_ms", "max_latency_ms", "min_cost", "max_cost", "min_score", "max_score"}


def _filters(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        k = k.strip().replace("-", "_")
        if not sep or not k:
            err_console.print(f"[red]--filter {p!r}:[/] write KEY=VALUE, e.g. --filter name=chat --filter tag=prod")
            raise typer.Exit(2)
        if k in ("tag", "tags"):
            out.setdefault("tags", []).append(v)
        elif k in _NUMERIC:
            try:
                out[k] = float(v)
            except ValueError:
                err_console.print(f"[red]--filter {k}:[/] {v!r} is not a number")
                raise typer.Exit(2)
        else:
            out[k] = v
    return out


@tune_app.command("export")
def export_cmd(
    fmt: str = typer.Option(..., "--format", help="sft | dpo | kto"),
    dataset: str = typer.Option(None, "--dataset", help="Save as this dataset (new version when changed)."),
    filters: list[str] = typer.Option([], "--filter", help="Trace filter KEY=VALUE (name, tag, user_id, "
                                      "environment, release, model, status, from, to...). Repeatable."),
    where: str = typer.Option(None, "--where", help="SFT keeps / KTO labels desirable: 'user-feedback=1'."),
    rank_by: str = typer.Option(None, "--rank-by", help="DPO: the score ranking responses to one input."),
    min_margin: float = typer.Option(0.0, "--min-margin", min=0.0, help="DPO: least chosen-rejected gap."),
    span_kind: str = typer.Option(None, "--span-kind", help="Export spans of this kind, not traces."),
    span_name: str = typer.Option(None, "--span-name", help="Export spans of this name, not traces."),
    redact: bool = typer.Option(False, "--redact", help="Replace PII and secrets in the records."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Drop longer records."),
    validation: float = typer.Option(0.1, "--validation", min=0.0, max=0.99, help="Validation share."),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Keep exact duplicates."),
    out: Path = typer.Option(None, "--out", help="Also write DIR/train.jsonl and DIR/validation.jsonl."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Statistics and a sample; save nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Export traces as training data, saved as a versioned dataset."""
    if dataset is None and not dry_run:
        err_console.print("[red]name a dataset:[/] --dataset NAME (or --dry-run to only look)")
        raise typer.Exit(2)
    body: dict[str, Any] = {
        "format": fmt, "dataset": dataset, "filter": _filters(filters), "where": where, "rank_by": rank_by,
        "min_margin": min_margin, "span_kind": span_kind, "span_name": span_name, "redact": redact,
        "max_tokens": max_tokens, "validation_ratio": validation, "dedup": not no_dedup, "dry_run": dry_run,
        "records": out is not None,
    }
    res = api_call("POST", "/api/v1/training-data/export", json={k: v for k, v in body.items() if v is not None})
    paths = write_jsonl(res.pop("records_by_split"), out) if out is not None else []
    if as_json:
        print_json(res)
        return
    ds = res.get("dataset")
    head = f"{res['records']} {fmt.upper()} records from {res['traces']} traces"
    if ds:
        head += f" -> dataset {ds['name']} v{ds['version']}" + ("" if ds["changed"] else " (unchanged)")
    elif dry_run:
        head += " (dry run: nothing saved)"
    console.print(head)
    console.print(f"train {res['splits']['train']}, validation {res['splits']['validation']}")
    if res["dropped"]:
        console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(res["dropped"].items())))
    if res["token_stats"]:
        table = Table("tokens", "count", "min", "p50", "p95", "max")
        for name, s in res["token_stats"].items():
            table.add_row(name, *(str(s[k]) for k in ("count", "min", "p50", "p95", "max")))
        console.print(table)
    for p in paths:
        console.print(f"wrote {p}")


# --- fine-tuning runs: `podium tune sft|dpo RECIPE.yaml` (docs/fine-tuning.md) ----------------------------


CANCELLED_EXIT = 3  # the run was cancelled (checkpoint saved): neither a success nor a failure


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err_console.print(msg)
    return typer.Exit(code)


def _jsonl(text: str, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise _fail(f"[red]{where}:{n}:[/] not JSON ({e})")
        if not isinstance(rec, dict):
            raise _fail(f"[red]{where}:{n}:[/] expected one JSON object a line")
        out.append(rec)
    return out


def _split(records: list[dict[str, Any]], share: float, seed: int) -> tuple[list[dict[str, Any]],
                                                                              list[dict[str, Any]]]:
    """Records with a ``split`` field keep it; otherwise a seeded random ``share`` is held out."""
    if any(r.get("split") in ("train", "validation") for r in records):
        return ([r for r in records if r.get("split") != "validation"],
                [r for r in records if r.get("split") == "validation"])
    n_val = min(round(len(records) * share), len(records) - 1) if share > 0 else 0
    if n_val <= 0:
        return records, []
    held = set(random.Random(seed).sample(range(len(records)), n_val))
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def _get_text(path: str, params: dict[str, Any], what: str) -> str:
    try:
        with api_client() as c:
            r = c.get(path, params=params)
    except httpx.HTTPError as e:
        raise _fail(f"[red]cannot reach the server:[/] {e}. Is `podium up` running at PODIUM_BASE_URL?", 1)
    if r.status_code >= 400:
        try:
            msg = r.json()["error"]["message"]
        except Exception:
            msg = r.text
        raise _fail(f"[red]{what}:[/] {msg}", 1)
    return r.text


def load_records(recipe: TuneRecipe) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """(train, validation, ``{name, version}`` of the dataset or None) for the recipe's data: a
    dataset exported by `podium tune export` (its own split when it has validation records) or a
    local JSONL file (its ``split`` fields, else ``data.validation`` held out)."""
    data = recipe.data
    seed = recipe.training.seed
    if data.path is not None:
        p = Path(data.path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise _fail(f"[red]data.path {p}:[/] cannot read it ({e.strerror})")
        train, val = _split(_jsonl(text, str(p)), data.validation, seed)
        return train, val, None
    try:
        name, version = data.dataset_ref()
    except PodiumError as e:
        raise _fail(f"[red]{e.message}[/]")
    if version is None:
        version = int(api_call("GET", f"/api/v1/datasets/{quote(name, safe='')}")["latest_version"])
    splits = {}
    for split in ("train", "validation"):
        text = _get_text(f"/api/v1/datasets/{quote(name, safe='')}/export.jsonl",
                         {"split": split, "version": version}, f"data.dataset {data.dataset}")
        splits[split] = _jsonl(text, f"dataset {name}@{version}")
    train, val = splits["train"], splits["validation"]
    if not val:
        train, val = _split(train, data.validation, seed)
    return train, val, {"name": name, "version": version}


def _base_model(spec: str) -> tuple[str, str]:
    """(what the trainer loads, what the run records): ``registry:/NAME@ALIAS`` of a merged model
    resolves to its artifact folder; anything else is passed on."""
    if not spec.startswith("registry:/"):
        return spec, ("smollm2-135m-instruct" if spec.lower() in ("smollm2", "smollm2-135m-instruct") else spec)
    v = api_call("GET", "/api/v1/registry/resolve", params={"ref": spec})
    art = v.get("artifact") or {}
    if art.get("kind") != "merged":
        raise _fail(f"[red]base_model {spec}:[/] {v['name']}@{v['version']} is a {art.get('kind')} artifact; a "
                    "base model must be merged weights (a Hugging Face folder). Name a merged version, or "
                    "`smollm2`")
    uri = str(art.get("uri") or "")
    p = Path(uri).expanduser()
    if "://" in uri or not p.exists():
        raise _fail(f"[red]base_model {spec}:[/] its artifact {uri} is not a folder on this machine")
    return str(p if p.is_dir() else p.parent), f"{v['name']}@{v['version']}"


class _Progress:
    """The run's progress: a rich bar on a terminal, plain lines otherwise (CI, logs, pipes)."""

    def __init__(self, run_id: str, quiet: bool) -> None:
        self.run_id = run_id
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None
        self.last_line = 0
        self.loss: float | None = None

    def __enter__(self) -> _Progress:
        if not self.quiet and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                                transient=False)
            self.bar.start()
            self.task = self.bar.add_task(f"run {self.run_id[:8]}", total=None, info="loading the model")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def log(self, log: StepLog) -> None:
        if log.loss is not None:
            self.loss = log.loss
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if log.eval_loss is not None:
            parts.append(f"eval_loss {log.eval_loss:.4f}")
        if log.learning_rate is not None:
            parts.append(f"lr {log.learning_rate:.2e}")
        info = "  ".join(parts)
        if self.bar is not None:
            self.bar.update(self.task, completed=log.step, total=log.max_steps, info=info)
        elif not self.quiet:
            total = log.max_steps or 0
            every = max(1, total // 20)
            if log.eval_loss is not None or log.step - self.last_line >= every or log.step == total:
                self.last_line = log.step
                console.print(f"step {log.step}/{total or '?'}  {info}")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)
        elif not self.quiet:
            err_console.print(text)


class _RunHooks:
    """The trainer's hooks for a tracked run: steps to the server (which answers whether a cancel
    was requested from the UI or API), the progress display, and Ctrl-C / SIGTERM as a stop."""

    POLL_S = 5.0

    def __init__(self, tracker: RunTracker, progress: _Progress) -> None:
        self.tracker = tracker
        self.progress = progress
        self.interrupted = False
        self.cancelled = False
        self.last: dict[str, Any] = {}
        self.last_poll = time.monotonic()

    def on_log(self, log: StepLog) -> None:
        self.progress.log(log)
        step = log.as_dict()
        if self.last.get("step") == log.step:  # an evaluation at the step just logged: one row for both
            step = {**self.last, **step}
        self.last = step
        self.cancelled = self.tracker.log_steps([step]) or self.cancelled
        self.last_poll = time.monotonic()

    def should_stop(self) -> bool:
        if self.interrupted or self.cancelled:
            return True
        if time.monotonic() - self.last_poll >= self.POLL_S:  # steps are not logged every step: ask
            self.last_poll = time.monotonic()
            try:
                with api_client() as c:
                    r = c.get(f"/api/v1/training-runs/{self.tracker.run_id}")
                self.cancelled = r.status_code == 200 and bool(r.json().get("cancel_requested"))
            except httpx.HTTPError:
                pass
        return self.cancelled

    def stop(self, signum: int, frame: Any) -> None:
        if self.interrupted:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.interrupted = True
        self.progress.say("[yellow]stopping after this step and saving a checkpoint[/] (Ctrl-C again to "
                          "abort without one)")


def _attach(run_id: str) -> RunTracker:
    from podium.cli.run_tracker import RunTracker, tracking_client

    run = api_call("GET", f"/api/v1/training-runs/{quote(run_id, safe='')}")
    return RunTracker(tracking_client(), run)


def _spawn(method: str, recipe_path: Path, run_id: str, log_path: Path, resume: bool) -> int:
    """The same command in the background (its own session, output to ``log_path``), attached to
    the run already created here."""
    args = [sys.executable, "-m", "podium.cli", "tune", method, str(recipe_path.resolve()), "--attach", run_id]
    if resume:
        args += ["--resume", run_id]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return p.pid


def _finish_line(run: dict[str, Any], result: TrainResult, recipe_path: Path) -> str:
    m = result.metrics
    parts = [f"run {run['id']} {result.status}: {result.steps} steps in {result.duration_s:.0f} s",
             ", ".join([f"{result.steps_per_s:.2f} steps/s", f"peak RSS {result.peak_rss_mb:.0f} MB",
                        *(f"{k} {m[k]:.4f}" for k in ("train_loss", "eval_loss") if k in m)])]
    if result.status == "cancelled":
        parts.append(f"checkpoint {result.checkpoint_dir}\nresume: podium tune {run['method']} {recipe_path} "
                     f"--resume {run['id']}")
    else:
        parts.append(f"adapter {result.adapter_dir}")
    return "\n".join(parts)


def _tune(method: str, recipe_path: Path, resume: str | None, detach: bool, attach: str | None,
          as_json: bool) -> None:
    from podium.cli.run_tracker import RunTracker
    from podium.tune.extra import require_tune_extra
    from podium.tune.recipe import load_recipe

    try:
        require_tune_extra(f"podium tune {method}", ("torch", "transformers", "peft", "trl", "datasets"))
    except PodiumError as e:
        raise _fail(f"[red]{e.message}[/]")
    try:
        recipe = load_recipe(recipe_path)
    except PodiumError as e:
        raise _fail(f"[red]{e.message}[/]")
    if recipe.method != method:
        raise _fail(f"[red]{recipe_path} is a {recipe.method} recipe:[/] run `podium tune {recipe.method} "
                    f"{recipe_path}` (or set method: {method})")
    base_path, base_name = _base_model(recipe.base_model)
    train_records, eval_records, dataset = load_records(recipe)
    if not train_records:
        raise _fail(f"[red]no training records in {recipe.data.dataset or recipe.data.path}[/]", 1)
    settings = Settings()
    tracker: RunTracker
    try:
        if attach:
            tracker = _attach(attach)
        elif resume:
            tracker = RunTracker.resume(resume)
        else:
            tracker = RunTracker.start(method, base_name, recipe.flat_params(), name=recipe.name, dataset=dataset,
                                       data_path=recipe.data.path, hardware={"device": recipe.device,
                                                                             "cpu_count": os.cpu_count()})
    except PodiumError as e:
        raise _fail(f"[red]cannot {'resume' if resume else 'start'} the run:[/] {e.message}", 1)
    run = tracker.run
    out_dir = Path(run.get("output_dir") or recipe.output_dir or settings.home_dir / "runs" / tracker.run_id)
    out_dir = out_dir.expanduser().resolve()
    if run.get("output_dir") != str(out_dir):
        tracker.update(output_dir=str(out_dir))
    if detach and not attach:
        log_path = out_dir / "train.log"
        pid = _spawn(method, recipe_path, tracker.run_id, log_path, resume is not None)
        tracker.close()
        if as_json:
            print_json({"id": tracker.run_id, "pid": pid, "log": str(log_path), "output_dir": str(out_dir)})
        else:
            console.print(f"run {tracker.run_id} training in the background (pid {pid})")
            console.print(f"log: {log_path}")
            console.print(f"follow it: podium tune runs show {tracker.run_id}")
        return
    earlier_s = float(run.get("duration_s") or 0.0) if resume else 0.0  # a resumed run's time adds up
    run_recipe = recipe.model_copy(update={"base_model": base_path})
    with tracker, _Progress(tracker.run_id, quiet=as_json) as progress:
        hooks = _RunHooks(tracker, progress)
        progress.say(f"run {tracker.run_id}: {method.upper()} on {base_name}, {len(train_records)} train / "
                     f"{len(eval_records)} validation records\noutput {out_dir}")
        main = threading.current_thread() is threading.main_thread()  # signals only reach the main thread
        old_int = signal.signal(signal.SIGINT, hooks.stop) if main else None
        old_term = signal.signal(signal.SIGTERM, hooks.stop) if main else None
        t0 = time.perf_counter()
        try:
            result = train(run_recipe, train_records, eval_records, output_dir=out_dir, hooks=hooks,
                           resume=resume is not None, settings=settings)
        except KeyboardInterrupt:
            tracker.finish("cancelled", error="interrupted (no checkpoint)", duration_s=time.perf_counter() - t0)
            raise _fail(f"[yellow]run {tracker.run_id} aborted[/]", 130)
        except Exception as e:
            msg = e.message if isinstance(e, PodiumError) else f"{e.__class__.__name__}: {e}"
            tracker.finish("failed", error=msg, duration_s=time.perf_counter() - t0)
            raise _fail(f"[red]run {tracker.run_id} failed:[/] {escape(msg)}", 1)
        finally:
            if main:
                signal.signal(signal.SIGINT, old_int)
                signal.signal(signal.SIGTERM, old_term)
        artifacts: dict[str, Any] = {"output_dir": str(out_dir), "adapter": str(result.adapter_dir)}
        if result.checkpoint_dir is not None:
            artifacts["checkpoint"] = str(result.checkpoint_dir)
        tracker.update(hardware=result.hardware)
        final = tracker.finish(result.status, metrics={**result.metrics, "steps": result.steps,
                                                       "steps_per_s": result.steps_per_s,
                                                       "peak_rss_mb": result.peak_rss_mb},
                               artifacts=artifacts, duration_s=earlier_s + result.duration_s)
    if as_json:
        print_json(final)
    else:
        console.print(_finish_line(final, result, recipe_path))
    if result.status == "cancelled":
        raise typer.Exit(CANCELLED_EXIT)  # `podium tune sft r.yaml && podium registry register ...` stops here


def _tune_command(method: str) -> Any:
    def command(
        recipe: Path = typer.Argument(..., help="The recipe (YAML): method, base_model, data, lora, training."),
        resume: str = typer.Option(None, "--resume", metavar="RUN_ID",
                                   help="Continue this cancelled or failed run from its last checkpoint."),
        detach: bool = typer.Option(False, "--detach", help="Train in the background; print the run id."),
        attach: str = typer.Option(None, "--attach", hidden=True, help="(internal) train for this existing run."),
        as_json: bool = typer.Option(False, "--json", help="Print the finished run as JSON (no progress)."),
    ) -> None:
        _tune(method, recipe, resume, detach, attach, as_json)

    command.__doc__ = {"sft": "Supervised fine-tuning (LoRA) on chat transcripts, tracked as a run.",
                       "dpo": "Preference tuning (DPO, LoRA) on chosen/rejected pairs, tracked as a run."}[method]
    return command


tune_app.command("sft")(_tune_command("sft"))
tune_app.command("dpo")(_tune_command("dpo"))

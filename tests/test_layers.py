"""The layers are checkable: no module loads a project module behind import-linter's back.

``lint-imports`` (the contracts in pyproject.toml) sees ``import`` statements, also inside
functions, but not ``importlib.import_module("podium.x")`` or ``__import__``: such a call would
hide an upward import or a cycle. This test walks every module under ``podium/`` with ``ast``
and fails on a dynamic import of a ``podium`` module, or of a computed name anywhere but the
allow-listed user-code loaders below. It also runs ``lint-imports`` and checks that
``import podium`` stays light.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import podium

ROOT = Path(podium.__file__).resolve().parent
REPO = ROOT.parent

# calls that load a module by name: importlib.import_module, __import__ (also builtins' and
# importlib's), importlib.util.spec_from_file_location, runpy.run_module
LOADERS = {"import_module", "__import__", "spec_from_file_location", "run_module"}

# (module, function) -> why it may load a module whose name is computed
ALLOWED = {
    ("podium.evals.scorers.base", "require"):
        "imports an optional third-party library a scorer needs (sacrebleu, rouge_score, jsonschema, openai)",
    ("podium.evals.scorers.deterministic", "load_callable"):
        "loads the user's own scorer or provider ('module:function' or 'file.py:function')",
    ("podium.plugins.manager", "get_plugin_manager"):
        "loads the built-in plugins (DEFAULT_PLUGINS: evals' scorers, the gateway's providers) by name, like any "
        "plugin: they sit above the plugin contract, which both evals and the gateway import",
}

# allow-listed loaders that take the module name as their first argument: calling them with a
# podium literal would be the same hidden import
WRAPPERS = {"require", "load_callable"}


@dataclass(frozen=True)
class Finding:
    module: str
    function: str
    line: int
    call: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} in {self.function or '<module>'}: {self.call}: {self.why}"


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_prefix(node: ast.expr) -> str | None:
    """The name's text when it is a literal (or the literal start of an f-string), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_prefix(node.left)
    return None


def _name_arg(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for kw in call.keywords:
        if kw.arg in ("name", "module", "mod_name", "ref"):
            return kw.value
    return None


def scan(source: str, module: str) -> list[Finding]:
    """Every dynamic import in ``source`` that breaks the rule."""
    tree = ast.parse(source)
    out: list[Finding] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call):
                check(child, scope)
            visit(child, scope)

    def check(call: ast.Call, scope: list[str]) -> None:
        name = _call_name(call.func)
        if name not in LOADERS and name not in WRAPPERS:
            return
        function = ".".join(scope)
        arg = _name_arg(call)
        text = _literal_prefix(arg) if arg is not None else None
        if text is not None and (text == "podium" or text.startswith(("podium.", "podium/"))):
            out.append(Finding(module, function, call.lineno, name, f"loads project module {text!r} dynamically: "
                               "use an import statement, so lint-imports sees it"))
        elif name in LOADERS and text is None and (module, scope[-1] if scope else "") not in ALLOWED:
            out.append(Finding(module, function, call.lineno, name, "loads a computed module name outside the "
                               "allow-list in tests/test_layers.py (add the function there with the reason, if it "
                               "loads user code or an optional library)"))

    visit(tree, [])
    return out


def project_modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def test_no_module_loads_a_project_module_dynamically() -> None:
    mods = project_modules()
    assert "podium.experiments.runner" in mods and "podium.evals.scorers.base" in mods
    findings = [f for m, p in mods.items() for f in scan(p.read_text(encoding="utf-8"), m)]
    assert not findings, "\n".join(map(str, findings))


def test_the_engine_takes_the_client_as_a_parameter() -> None:
    """Neither evaluation package reaches for the SDK's global client."""
    hits = []
    for m, p in project_modules().items():
        if m.startswith(("podium.evals", "podium.experiments")):
            tree = ast.parse(p.read_text(encoding="utf-8"))
            hits += [f"{m}:{n.lineno}" for n in ast.walk(tree)
                     if isinstance(n, ast.Name | ast.Attribute | ast.alias)
                     and "get_client" in (getattr(n, "id", None), getattr(n, "attr", None), getattr(n, "name", None))]
    assert not hits, hits


def test_allow_list_names_real_loaders() -> None:
    """Every allow-listed function exists and still loads something (no stale entries)."""
    mods = project_modules()
    for (module, function), reason in ALLOWED.items():
        assert reason
        tree = ast.parse(mods[module].read_text(encoding="utf-8"))
        fns = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
        assert fns, f"{module}.{function} is allow-listed but does not exist"
        calls = {_call_name(c.func) for c in ast.walk(fns[0]) if isinstance(c, ast.Call)}
        assert calls & LOADERS, f"{module}.{function} is allow-listed but loads nothing"


@pytest.mark.parametrize("source", [
    "import importlib\ndef f():\n    return importlib.import_module('podium.evals.runner')\n",
    "from importlib import import_module\nx = import_module('podium.experiments')\n",
    "def f():\n    return __import__('podium.sdk.client', fromlist=['get_client'])\n",
    "import importlib\ndef f(n):\n    return importlib.import_module(f'podium.{n}')\n",
    "import importlib.util\ns = importlib.util.spec_from_file_location('podium.x', 'podium/x.py')\n",
    "import importlib\ndef load(name):\n    return importlib.import_module(name)\n",
    "def f():\n    return require('podium.inference', scorer='x', package='p', requirement='p')\n",
])
def test_the_scan_catches_hidden_imports(source: str) -> None:
    assert scan(source, "podium.example")


def test_the_scan_allows_the_user_code_loaders() -> None:
    src = "import importlib\ndef require(module):\n    return importlib.import_module(module)\n"
    assert scan(src, "podium.evals.scorers.base") == []
    assert scan("import importlib\nm = importlib.import_module('json')\n", "podium.x") == []
    assert scan("import importlib.util\ns = importlib.util.find_spec('llama_cpp')\n", "podium.x") == []


def test_import_contracts_hold() -> None:
    """``lint-imports``: layers point down, evals imports no SDK/server/experiments, no cycles."""
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), f"{exe}: install the dev extra (import-linter)"
    r = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    for contract in ("Layers point down", "podium.evals imports no SDK", "podium.experiments is a client",
                     "No import cycles"):
        assert contract in r.stdout


def test_import_podium_stays_light() -> None:
    code = (
        "import sys, podium; "
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'numpy' "
        "or m.startswith(('podium.evals', 'podium.experiments'))]; "
        "assert not heavy, heavy; "
        "assert callable(podium.evaluate)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)

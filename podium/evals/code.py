"""User code in suites: JavaScript and Python snippets, as promptfoo runs them.

promptfoo's assertions and transforms are small snippets with ``output`` and ``context`` in
scope. The same rules apply to both languages:

* a one-line snippet is an expression (``output.startsWith('Ahoy')``, ``len(output) > 3``);
* a snippet of several lines is a function body that ``return``s;
* ``file://path.js`` (``module.exports = (output, context) => ...``, or ``file://path.js:name``)
  and ``file://path.py`` (``get_assert`` / ``get_transform``, or ``file://path.py:name``)
  load a function from a file relative to the suite.

JavaScript runs in QuickJS (the ``quickjs`` package from the ``eval`` extra: a fresh context
per call, 5 s and 64 MiB limits), or in Node.js when ``quickjs`` is not installed and ``node`` is
on ``PATH``. With neither, building a JavaScript snippet raises :class:`CodeError` saying how to
install one. Python snippets run in this process, as the suite's own code.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError

__all__ = ["CodeError", "CodeRuntimeError", "js_engine", "js_function", "python_function"]

JS_TIME_LIMIT_S = 5.0
JS_MEMORY_LIMIT = 64 * 1024 * 1024

Snippet = Callable[[Any, Mapping[str, Any]], Any]


class CodeError(ConfigurationError):
    """A snippet that cannot be built: a syntax error, a missing file, no JavaScript engine."""

    code = "code_error"


class CodeRuntimeError(Exception):
    """A snippet raised (or timed out) while running on one item."""


def js_engine() -> str | None:
    """``"quickjs"``, ``"node"`` or ``None``: the engine JavaScript snippets would run in."""
    try:
        import quickjs  # noqa: F401
    except ImportError:
        return "node" if shutil.which("node") else None
    return "quickjs"


def _split_ref(ref: str, suffix: str) -> tuple[str, str | None]:
    """``path.js`` or ``path.js:name`` (a Windows drive letter is not a name)."""
    head, sep, tail = ref.rpartition(":")
    if sep and head.endswith(suffix) and tail.isidentifier():
        return head, tail
    return ref, None


def _read(ref: str, base: Path, suffix: str) -> tuple[str, Path, str | None]:
    path_s, name = _split_ref(ref[len("file://"):], suffix)
    path = (base / path_s).resolve()
    try:
        return path.read_text(encoding="utf-8"), path, name
    except OSError as e:
        raise CodeError(f"cannot read {path}: {e.strerror or e}") from None


# --- JavaScript -------------------------------------------------------------------------------------------


def _js_program(source: str, base: Path) -> str:
    """A JS expression that evaluates to the snippet as a function ``(output, context) => ...``."""
    if source.startswith("file://"):
        text, path, name = _read(source, base, ".js")
        pick = f"m[{json.dumps(name)}]" if name else "(typeof m === 'function' ? m : m.default)"
        return (f"(function(){{ var module = {{exports: {{}}}}; var exports = module.exports;\n{text}\n"
                f"; var m = module.exports; var f = {pick};\n"
                f"if (typeof f !== 'function') throw new Error({json.dumps(str(path) + ' exports no function')});"
                " return f; })()")
    body = source if "\n" in source.strip() else f"return ({source});"
    return f"(function(output, context) {{\n{body}\n}})"


def _js_call(program: str, output: Any, context: Mapping[str, Any]) -> str:
    args = json.dumps([output, dict(context)], ensure_ascii=False, default=str)
    return (f"(function(){{ var f = {program}; var a = JSON.parse({json.dumps(args)});"
            " var r = f(a[0], a[1]); return JSON.stringify(r === undefined ? null : r); })()")


_NODE_RUNNER = """
let src = '';
process.stdin.on('data', d => src += d);
process.stdin.on('end', () => {
  try { process.stdout.write(JSON.stringify({ok: eval(src)})); }
  catch (e) { process.stdout.write(JSON.stringify({error: String(e && e.stack || e)})); }
});
"""


def _run_js(code: str, engine: str) -> Any:
    if engine == "quickjs":
        import quickjs

        ctx = quickjs.Context()
        ctx.set_time_limit(JS_TIME_LIMIT_S)
        ctx.set_memory_limit(JS_MEMORY_LIMIT)
        try:
            raw = ctx.eval(code)
        except quickjs.JSException as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else "error"
            if "interrupted" in msg:
                msg = f"timed out after {JS_TIME_LIMIT_S:g} s"
            raise CodeRuntimeError(msg) from None
        return json.loads(raw) if isinstance(raw, str) else None
    try:
        proc = subprocess.run(["node", "-e", _NODE_RUNNER], input=code, capture_output=True, text=True,
                              timeout=JS_TIME_LIMIT_S + 5)
    except subprocess.TimeoutExpired:
        raise CodeRuntimeError(f"timed out after {JS_TIME_LIMIT_S:g} s") from None
    try:
        res = json.loads(proc.stdout)
    except ValueError:
        raise CodeRuntimeError(f"node failed: {(proc.stderr or proc.stdout).strip()[:500]}") from None
    if "error" in res:
        raise CodeRuntimeError(str(res["error"]).splitlines()[0])
    return json.loads(res["ok"]) if isinstance(res.get("ok"), str) else None


def js_function(source: str, *, base: Path, what: str = "javascript") -> Snippet:
    """Build a JavaScript snippet; raises :class:`CodeError` now for a syntax error."""
    if not isinstance(source, str) or not source.strip():
        raise CodeError(f"{what}: give the JavaScript as a string (an expression, a function body or file://x.js)")
    engine = js_engine()
    if engine is None:
        raise CodeError(f"{what}: JavaScript needs an engine: pip install 'podium[eval]' (installs quickjs) "
                        "or install Node.js")
    program = _js_program(source.strip(), base)
    try:  # compile once, so a syntax error stops the suite before anything runs
        _run_js(f"(function(){{ var f = {program}; return JSON.stringify(typeof f); }})()", engine)
    except CodeRuntimeError as e:
        raise CodeError(f"{what}: {e}") from None

    def run(output: Any, context: Mapping[str, Any]) -> Any:
        return _run_js(_js_call(program, output, context), engine)

    return run


# --- Python -------------------------------------------------------------------------------------------------


def python_function(source: str, *, base: Path, what: str = "python", default_name: str = "get_assert") -> Snippet:
    """Build a Python snippet: an expression, a function body, or ``file://x.py[:name]``."""
    if not isinstance(source, str) or not source.strip():
        raise CodeError(f"{what}: give the Python as a string (an expression, a function body or file://x.py)")
    src = source.strip("\n")
    if src.startswith("file://"):
        text, path, name = _read(src, base, ".py")
        scope: dict[str, Any] = {"__name__": f"_podium_snippet_{abs(hash(str(path)))}", "__file__": str(path)}
        try:
            exec(compile(text, str(path), "exec"), scope)
        except Exception as e:
            raise CodeError(f"{what}: {path}: {type(e).__name__}: {e}") from None
        fn = scope.get(name or default_name)
        if not callable(fn):
            raise CodeError(f"{what}: {path} has no function {name or default_name!r}")
        return _guarded(fn)
    body = src if "\n" in src.strip() else f"return ({src.strip()})"
    code = "def _snippet(output, context):\n" + textwrap.indent(textwrap.dedent(body), "    ") + "\n"
    scope = {"__name__": "_podium_snippet", "json": json, "math": math}
    try:
        exec(compile(code, f"<{what}>", "exec"), scope)
    except SyntaxError as e:
        raise CodeError(f"{what}: invalid Python: {e.msg} in {src.strip().splitlines()[0][:120]!r}") from None
    return _guarded(scope["_snippet"])


def _guarded(fn: Callable[..., Any]) -> Snippet:
    def run(output: Any, context: Mapping[str, Any]) -> Any:
        try:
            return fn(output, dict(context))
        except Exception as e:
            raise CodeRuntimeError(f"{type(e).__name__}: {e}") from e

    return run

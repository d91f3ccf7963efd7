"""promptfoo's ``transform``: reshape an output before it is stored or scored.

A transform is JavaScript, as in promptfoo (``JSON.parse(output)``, ``output.countries``, a
function body, or ``file://x.js``), or Python from a file (``file://x.py``, function
``get_transform`` or ``file://x.py:name``). It receives ``output`` and ``context``
(``vars``, ``prompt`` where known) and returns the new output (any JSON value).

Where it applies, in order: a provider's ``transform`` (what the experiment stores as the
output), then the test's ``options.transform`` (or ``defaultTest.options.transform``), then an
assertion's own ``transform`` (that assertion only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from podium.evals.code import CodeRuntimeError, Snippet, js_function, python_function
from podium.evals.scorers.base import Scorer, ScorerError

__all__ = ["Transform", "TransformedScorer"]


class Transform:
    """One transform snippet; ``transform(output, variables)`` returns the new output."""

    def __init__(self, source: str, *, base: Path, what: str = "transform") -> None:
        self.source = source
        src = source.strip()
        is_py = src.startswith("file://") and (src.endswith(".py") or ".py:" in src)
        self.fn: Snippet = (python_function(src, base=base, what=what, default_name="get_transform") if is_py
                            else js_function(src, base=base, what=what))

    def __call__(self, output: Any, variables: Mapping[str, Any] | None = None, prompt: Any = None) -> Any:
        context: dict[str, Any] = {"vars": dict(variables or {})}
        if prompt is not None:
            context["prompt"] = prompt
        return self.fn(output, context)


class TransformedScorer(Scorer):
    """A scorer that sees ``transform(output)`` instead of the output (keeps its name and rules)."""

    def __init__(self, inner: Scorer, transforms: Sequence[Transform]) -> None:
        super().__init__(name=inner.name, weight=inner.weight)
        self.inner = inner
        self.transforms = list(transforms)
        self.type = inner.type  # type: ignore[misc]  # report the wrapped scorer's type
        self.direction = inner.direction  # type: ignore[misc]
        self.verdict = inner.verdict  # type: ignore[misc]
        self.threshold = inner.threshold
        self.invert = inner.invert
        required = {*inner.required, "output"}
        self._declare(sorted(required), [f for f in (*inner.fields, "input") if f not in required])

    def _run(self, rows: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = [None] * len(rows)
        inner_rows: list[dict[str, Any]] = []
        slots: list[int] = []
        for i, row in enumerate(rows):
            value = row.get("output")
            variables = row.get("input") if isinstance(row.get("input"), Mapping) else {}
            try:
                for t in self.transforms:
                    value = t(value, variables)
            except CodeRuntimeError as e:
                out[i] = ScorerError(f"transform failed: {e}", scorer=self.name)
                continue
            inner_rows.append({f: (value if f == "output" else row.get(f)) for f in self.inner.fields})
            slots.append(i)
        if inner_rows:
            self.inner.name = self.name  # the runner may have renamed this scorer to keep names unique
            for i, r in zip(slots, self.inner._run(inner_rows), strict=True):
                out[i] = r
        return out

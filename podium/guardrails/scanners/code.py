"""``code``: source code in the text (an answer that should be prose, a prompt pasting code).

Two signals, no model. A Markdown code fence (```` ``` ````) is code, its language from the
fence's tag when it has one. Outside fences, each line is scored by how much it looks like
code (keywords at the start of a statement, ``;`` or ``{``/``}`` at the end, calls and
assignments, shell prompts, SQL, HTML tags); runs of such lines are code blocks. Each block
is a finding (label ``code``, with the guessed language in ``detail``), so ``action: redact``
can replace it.

Score: 1.0 for a fenced block; else the largest unfenced block's share of the text's non-empty
lines, doubled and capped at 1 (0.5 when a quarter of the lines are code), with a single code
line in a long text scoring low. ``languages`` limits what counts to blocks whose fence tag or
guessed language is in the list (``["python", "sql"]``); ``fenced_only`` ignores unfenced code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["Code", "code_blocks"]

_FENCE = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)

# (language, pattern) for one line of code; the first that matches names the language.
_LINE: list[tuple[str, re.Pattern[str]]] = [(lang, re.compile(p)) for lang, p in [
    ("python", r"^\s*(def|class)\s+\w+\s*[(:]|^\s*(from\s+[\w.]+\s+)?import\s+[\w.]+(\s+as\s+\w+)?\s*$"
               r"|^\s*(elif|except|finally|with|async\s+def|lambda)\b.*:\s*$|^\s*if\s+.+:\s*$|^\s*for\s+\w+\s+in\s+.+:\s*$"
               r"|^\s*(return|yield|raise)\b.*\S|^\s*print\(|^\s*@\w+(\.\w+)*(\(.*\))?\s*$|^\s*self\.\w+"),
    ("javascript", r"^\s*(const|let|var)\s+\w+\s*=|^\s*function\s*\w*\s*\(|=>\s*[{(]?|^\s*console\.\w+\(|^\s*export\s+"
                   r"(default\s+)?(function|class|const)|require\(['\"]"),
    ("c", r"^\s*#\s*(include|define|ifn?def|endif)\b|^\s*(int|void|char|float|double|bool|auto|static|public|private|"
          r"protected)\s+[\w<>*&\[\]]+\s*[\w(]|^\s*(System\.out|std::|printf\s*\()"),
    ("sql", r"(?i)^\s*(select\s+.+\s+from\s+\w|insert\s+into\s+\w|update\s+\w+\s+set\s|delete\s+from\s+\w"
            r"|create\s+(table|index|view)\s|drop\s+(table|index)\s|alter\s+table\s)"),
    ("shell", r"^\s*(\$|#)\s+(sudo|pip|npm|git|cd|ls|cat|echo|curl|wget|docker|kubectl|apt|brew|python|make)\b"
              r"|^\s*(sudo|pip|npm|git|curl|wget|docker|kubectl|apt-get|brew)\s+-?\w+.*(\s-{1,2}\w|\s\S+/)"
              r"|\|\s*(grep|awk|sed|xargs)\b|^\s*rm\s+-rf?\s"),
    ("html", r"^\s*</?(html|head|body|div|span|script|style|p|a|ul|li|table|form|input|button)\b[^>]*>"),
    ("code", r"[;{]\s*$|^\s*}\s*[;)]?\s*$|^\s*\w+(\.\w+)*\s*(=|\+=|-=|==)\s*[\w\"'\[({].*[)\]\"'\d]\s*;?\s*$"
             r"|^\s*\w+(\.\w+)+\(.*\)\s*;?\s*$"),
]]


@dataclass(frozen=True, slots=True)
class Block:
    start: int
    end: int
    language: str
    fenced: bool
    lines: int


def _line_language(line: str) -> str | None:
    if len(line.strip()) < 2:
        return None
    for lang, pattern in _LINE:
        if pattern.search(line):
            return lang
    return None


def code_blocks(text: str) -> tuple[list[Block], int]:
    """Code blocks in ``text`` (fenced first, then runs of code-like lines outside fences) and
    the number of non-empty lines outside fences."""
    blocks: list[Block] = []
    taken: list[tuple[int, int]] = []
    for m in _FENCE.finditer(text):
        body = m.group(3)
        lang = (m.group(2) or "").lower() or (_guess(body) or "code")
        blocks.append(Block(m.start(), m.end(), lang, True, body.count("\n") + 1))
        taken.append((m.start(), m.end()))
    prose_lines = 0
    run: list[tuple[int, int, str]] = []
    pos = 0
    k = 0  # the first fence that does not end before this line (fences are in order)
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        while k < len(taken) and taken[k][1] <= start:
            k += 1
        if k < len(taken) and taken[k][0] <= start:
            continue
        if not line.strip():
            continue
        prose_lines += 1
        lang = _line_language(line)
        if lang is not None:
            run.append((start, end, lang))
        else:
            _close(run, blocks)
            run = []
    _close(run, blocks)
    return sorted(blocks, key=lambda b: b.start), prose_lines


def _close(run: list[tuple[int, int, str]], blocks: list[Block]) -> None:
    if not run:
        return
    langs = [lang for _, _, lang in run if lang != "code"]
    lang = max(set(langs), key=langs.count) if langs else "code"
    blocks.append(Block(run[0][0], run[-1][1], lang, False, len(run)))


def _guess(body: str) -> str | None:
    langs = [lang for line in body.splitlines() if (lang := _line_language(line)) and lang != "code"]
    return max(set(langs), key=langs.count) if langs else None


class Code(Scanner):
    """Source code in the text: Markdown fences and code-like lines (see the module docstring)."""

    name = "code"
    kinds = frozenset({"input", "output"})
    description = "Source code in the text (fenced blocks and code-like lines)"

    def __init__(self, languages: Sequence[str] | None = None, fenced_only: bool = False) -> None:
        if isinstance(languages, str):
            languages = [languages]
        self.languages = {_ALIASES.get(x.lower(), x.lower()) for x in languages} if languages else None
        self.fenced_only = fenced_only

    def scan(self, text: str, ctx: Context) -> Result:
        blocks, lines = code_blocks(text)
        if self.fenced_only:
            blocks = [b for b in blocks if b.fenced]
        if self.languages is not None:
            blocks = [b for b in blocks if _ALIASES.get(b.language, b.language) in self.languages]
        if not blocks:
            return Result(score=0.0)
        if any(b.fenced for b in blocks):
            score = 1.0
        else:
            score = min(1.0, 2 * max(b.lines for b in blocks) / max(lines, 1))
        langs = list(dict.fromkeys(b.language for b in blocks))
        findings = [Finding(b.start, b.end, "code", text[b.start:b.end], score if not b.fenced else 1.0)
                    for b in blocks]
        return Result(score=score, findings=findings,
                      detail=f"{len(blocks)} code block(s): {', '.join(langs)}",
                      metadata={"languages": langs, "fenced": sum(b.fenced for b in blocks)})


_ALIASES = {"py": "python", "python3": "python", "js": "javascript", "ts": "javascript", "typescript": "javascript",
            "jsx": "javascript", "tsx": "javascript", "sh": "shell", "bash": "shell", "zsh": "shell",
            "console": "shell", "c++": "c", "cpp": "c", "java": "c", "c#": "c", "cs": "c", "csharp": "c",
            "postgresql": "sql", "mysql": "sql", "sqlite": "sql", "htm": "html", "xml": "html"}

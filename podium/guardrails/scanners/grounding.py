"""``groundedness``: claims in the answer that the request's context does not support.

The answer is split into sentences; each with at least ``min_words`` words and two content
words is a *claim* (questions and pleasantries are not). Each claim gets a support in [0, 1]
from the documents (``ctx.documents``: the context given with the request, such as retrieved
passages; plus the prompt with ``include_prompt``):

- *lexical*: the share of the claim's content words (stop words dropped, light stemming) that
  occur in the documents;
- *semantic*: the best MiniLM-L6-v2 cosine between the claim and a document sentence or pair
  of neighbouring sentences, mapped linearly from [0.3, 0.8] to [0, 1];
- support = the mean of the two (lexical alone without the embedding model), times 0.4 for
  each number or name (a capitalised word inside the sentence) in the claim that appears nowhere in
  the documents or the prompt. Invented figures and names are the commonest hallucinations,
  and neither word overlap nor embeddings notice a changed year.

A claim with support below ``min_support`` (0.5) is unsupported: a finding with its span
(label ``unsupported-claim``, score 1 - support). The scanner's score is the share of claims
that are unsupported, so the default threshold 0.5 fires when half the claims lack support;
use a threshold such as 0.2 to fire on one claim in five, or 0.01 on any.

``judge: true`` asks ``ctx.llm`` (the policy's judge model) about claims whose support is in
the uncertain band [0.25, 0.75]: its SUPPORTED / UNSUPPORTED answer replaces the support.

At most the first 100 claims are checked (``metadata["skipped_claims"]`` counts the rest).
The whole answer is needed: score 0 on stream windows (``ctx.final`` False), and 0 with a note
when the request gave no documents. ``mode``: ``auto`` (embeddings when installed, else
lexical, said in ``metadata["note"]``), ``embedding`` (error naming the install command when
missing) or ``lexical``. Cost "slow": give it ``timeout_ms: 2000`` or so in a policy (MiniLM
embeds ~150 sentences a second on two cores; documents seen before come from a cache).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from podium.guardrails.base import Context, Finding, Result, Scanner
from podium.guardrails.scanners import vectors
from podium.guardrails.scanners.sentences import Sentence, sentences, words

__all__ = ["Claim", "Groundedness", "content_words"]

log = logging.getLogger("podium.guardrails")

SEM_LOW, SEM_HIGH = 0.3, 0.8
JUDGE_BAND = (0.25, 0.75)
NOVEL_FACTOR = 0.4  # per invented number or name: even a claim otherwise fully supported falls below 0.5
MAX_DOC_SEGMENTS = 400
MAX_CLAIMS = 100  # the first claims of a very long answer (the rest are counted in metadata.skipped_claims)
JUDGE_CONTEXT_CHARS = 6000

_STOP_WORDS = """
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing done down during each either else etc even ever every few for from
further get gets got had has have having he her here hers herself him himself his how however i if in into is it
its itself just least less let like made make many may me might more most much must my myself need no nor not
now of off often on once one only or other others our ours ourselves out over own per perhaps please quite
rather really same say says said see seem seems shall she should since so some such sure than that the their
theirs them themselves then there these they thing things this those though through thus to too under until up
upon us use used using very via was we well were what whatever when where whether which while who whom whose why
will with within without would yes yet you your yours yourself yourselves
answer answers question questions based context provided information document documents according mentioned
text passage note hope helps help helpful feel free ask know let glad happy certainly course anything else
something here's there's it's that's i'm i'd i'll you're we're they're don't doesn't didn't can't won't isn't
aren't wasn't weren't also additionally furthermore overall generally typically usually
"""
_STOP = frozenset(_STOP_WORDS.split())
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")
_NAME = re.compile(r"(?<![\w'’])[A-Z][\w'’-]*[a-z][\w'’-]*|(?<![\w'’])[A-Z]{2,}\b")


def _stem(w: str) -> str:
    w = w.replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, repl in (("ies", "y"), ("ing", ""), ("edly", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: len(w) - len(suffix)] + repl
    return w


def content_words(text: str) -> set[str]:
    """The stems of ``text``'s words that carry meaning (no stop words, no one-letter words)."""
    return {_stem(w) for w in words(text) if w not in _STOP and len(w) > 1 and not w.replace(".", "").isdigit()}


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}


def _numbers(text: str) -> set[str]:
    """Numbers in ``text`` (thousands separators and % dropped; "three" counts as 3)."""
    found = {n.replace(",", "").rstrip("%").lstrip("+") for n in _NUMBER.findall(text)}
    return found | {_NUMBER_WORDS[w] for w in words(text) if w in _NUMBER_WORDS}


def _names(sentence: str) -> set[str]:
    """Capitalised words that are not the sentence's first word (names, places, products)."""
    out = set()
    for m in _NAME.finditer(sentence):
        if m.start() == 0 or sentence[:m.start()].rstrip().endswith((":", "-", "*", "•", '"', "“")):
            continue
        w = m.group().lower().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        if w not in _STOP:
            out.add(w)
    return out


@dataclass(slots=True)
class Claim:
    """One checked sentence of the answer and how well the documents support it."""

    sentence: Sentence
    lexical: float
    semantic: float | None
    novel: list[str]
    support: float
    judged: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.sentence.start, "end": self.sentence.end, "support": round(self.support, 4),
                "lexical": round(self.lexical, 4),
                "semantic": None if self.semantic is None else round(self.semantic, 4),
                "novel": self.novel, "judged": self.judged}


def _doc_segments(documents: Sequence[str]) -> list[str]:
    """Document sentences and pairs of neighbouring sentences (capped at MAX_DOC_SEGMENTS by
    grouping sentences of long documents into runs)."""
    per_doc = [[s.text for s in sentences(d)] for d in documents]
    total = sum(len(s) for s in per_doc)
    size = max(1, -(-2 * total // MAX_DOC_SEGMENTS))
    segs: list[str] = []
    for sents in per_doc:
        runs = [" ".join(sents[i:i + size]) for i in range(0, len(sents), size)]
        segs.extend(runs)
        segs.extend(f"{a} {b}" for a, b in itertools.pairwise(runs))
    return list(dict.fromkeys(segs))


class Groundedness(Scanner):
    """Claims of the answer not supported by the request's documents (see the module docstring)."""

    name = "groundedness"
    kinds = frozenset({"output"})
    cost = "slow"
    description = "Claims in the answer not supported by the request's documents (overlap + MiniLM, optional judge)"

    def __init__(self, mode: Literal["auto", "embedding", "lexical"] = "auto", min_support: float = 0.5,
                 min_words: int = 4, include_prompt: bool = False, judge: bool = False) -> None:
        if mode not in ("auto", "embedding", "lexical"):
            raise ValueError(f"mode must be auto, embedding or lexical, not {mode!r}")
        if not 0 <= min_support <= 1:
            raise ValueError("min_support must be in [0, 1]")
        self.mode = mode
        self.min_support = min_support
        self.min_words = min_words
        self.include_prompt = include_prompt
        self.judge = judge

    def _use_embeddings(self) -> bool:
        return self.mode == "embedding" or (self.mode == "auto" and vectors.available())

    def warm(self) -> None:
        if self._use_embeddings():
            vectors.embedder()

    def claims(self, text: str) -> list[Sentence]:
        """The sentences of ``text`` that state something."""
        return [s for s in sentences(text)
                if not s.text.rstrip().endswith("?") and len(words(s.text)) >= self.min_words
                and len(content_words(s.text)) >= 2]

    def scan(self, text: str, ctx: Context) -> Result:
        if not ctx.final:
            return Result(score=0.0, detail="not checked: waits for the whole answer")
        docs = [d for d in ctx.documents if d and d.strip()]
        if self.include_prompt and ctx.prompt:
            docs.append(ctx.prompt)
        if not docs:
            return Result(score=0.0, detail="not checked: the request gave no documents to ground the answer in",
                          metadata={"checked": False})
        sents = self.claims(text)
        if not sents:
            return Result(score=0.0, detail="no claims to check", metadata={"checked": True, "claims": 0})
        meta: dict[str, Any] = {"checked": True}
        if len(sents) > MAX_CLAIMS:
            meta["skipped_claims"] = len(sents) - MAX_CLAIMS
            sents = sents[:MAX_CLAIMS]
        known_words = set().union(*(content_words(d) for d in docs))
        known_numbers = set().union(*(_numbers(d) for d in docs))
        known_text = " ".join([*docs, ctx.prompt or ""]).lower().replace("’", "'")
        sems: list[float | None] = [None] * len(sents)
        if self._use_embeddings():
            segs = _doc_segments(docs)
            cos = vectors.embed([s.text for s in sents]) @ vectors.embed(segs).T
            sems = [min(1.0, max(0.0, (float(c) - SEM_LOW) / (SEM_HIGH - SEM_LOW))) for c in cos.max(axis=1)]
            meta["method"] = "lexical+embedding"
        else:
            meta["method"] = "lexical"
            if self.mode == "auto":
                meta["note"] = f"embedding model not installed; lexical overlap only ({vectors.INSTALL_HINT})"
        claims = []
        for s, sem in zip(sents, sems, strict=True):
            cw = content_words(s.text)
            lexical = len(cw & known_words) / len(cw)
            novel = sorted(n for n in _numbers(s.text) if n not in known_numbers)
            novel += sorted(n for n in _names(s.text) if n not in known_text)
            support = lexical if sem is None else (lexical + sem) / 2
            support *= NOVEL_FACTOR ** len(novel)
            claims.append(Claim(s, lexical, sem, novel, support))
        if self.judge:
            meta["judged"] = self._ask(claims, docs, ctx, meta)
        bad = [c for c in claims if c.support < self.min_support]
        score = len(bad) / len(claims)
        meta.update(claims=len(claims), unsupported=len(bad), details=[c.to_dict() for c in claims])
        findings = [Finding(c.sentence.start, c.sentence.end, "unsupported-claim", c.sentence.text,
                            round(1 - c.support, 4)) for c in bad]
        detail = None
        if bad:
            first = bad[0]
            why = f" ({', '.join(first.novel)} not in the documents)" if first.novel else ""
            detail = f"{len(bad)} of {len(claims)} claims not supported by the documents, e.g. {first.sentence.text!r}{why}"
        return Result(score=score, findings=findings, detail=detail, metadata=meta)

    def _ask(self, claims: list[Claim], docs: list[str], ctx: Context, meta: dict[str, Any]) -> int:
        """Ask the judge about the uncertain claims; returns how many it answered."""
        if ctx.llm is None:
            meta["judge_note"] = "judge: true but no judge model is configured for this policy"
            return 0
        context = "\n\n".join(docs)[:JUDGE_CONTEXT_CHARS]
        asked = 0
        lo, hi = JUDGE_BAND
        for c in claims:
            if not lo <= c.support <= hi:
                continue
            prompt = ("Does the context support the claim? Reply with one word: SUPPORTED or UNSUPPORTED.\n\n"
                      f"Context:\n{context}\n\nClaim: {c.sentence.text}\n\nAnswer:")
            try:
                reply = ctx.llm(prompt)
            except Exception as e:  # the judge is an extra opinion: keep the overlap verdict
                meta["judge_note"] = f"judge failed: {type(e).__name__}: {e}"
                log.warning("groundedness judge failed: %s", e)
                break
            verdict = reply.strip().upper()
            asked += 1
            if verdict.startswith("UNSUPPORTED") or verdict.startswith("NOT SUPPORTED"):
                c.support, c.judged = 0.0, "unsupported"
            elif verdict.startswith("SUPPORTED"):
                c.support, c.judged = 1.0, "supported"
        return asked

"""Faithfulness to the retrieved context without a judge: claim-level support from the local
model's log-probabilities and MiniLM embeddings.

The output is split into claims (its sentences). For each claim, up to three signals:

* **yes/no margin**: the local chat model is asked "Is the answer supported by the context?"
  and both fixed replies are scored with
  :meth:`podium.inference.LocalChatModel.response_logprobs`:
  ``log p("Yes") - log p("No")``. No text is generated, so nothing needs parsing;
* **likelihood gain**: how much likelier the context makes the claim, per token:
  ``(log p(claim | context, question) - log p(claim | question)) / tokens``;
* **evidence cosine**: the highest cosine similarity between the claim and any sentence of the
  context under the bundled MiniLM (:class:`podium.inference.LocalEmbedder`); that sentence is
  the claim's evidence.

A logistic function of the signals gives each claim a support probability; a claim is supported
when it is at least ``claim_threshold`` (0.5). ``method`` picks the signals: ``likelihood``
(margin and gain), ``embedding`` (cosine) or ``combined`` (all three, the default). The
weights in :data:`CALIBRATION` were fitted by ``bench/faithfulness.py --calibrate`` on a dev
split of HaluEval QA that the benchmark's test items never overlap; they are heuristics for the
bundled SmolLM2-135M and MiniLM, not a trained verifier. The value is the share of supported
claims (``aggregate="share"``) or the lowest claim probability (``aggregate="min"``).

When the item has an ``input`` (the question), it is shown with the claim in the prompts and
embedded with it: a short answer ("Delhi") is only a claim together with its question.

The model and embedder are the process-wide ones (loaded on first use) unless given: ``model``
is any object with ``response_logprobs(messages, response)`` returning per-token
``logprobs``; ``embedder`` is what the ``similar`` scorer accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from podium.evals.scorers.base import Score, Scorer, ScorerConfigError, ScorerError, text_of

__all__ = ["CALIBRATION", "Faithfulness", "aggregate_claims", "split_sentences"]

METHODS: tuple[str, ...] = ("likelihood", "embedding", "combined")

# Logistic weights per method: bias and one weight per signal (margin, gain, cosine), fitted by
# `bench/faithfulness.py --calibrate` on the dev split (200 HaluEval QA answers, seed 17; see
# docs/scorers.md). A signal a method does not use has weight 0 and is not computed. On that data
# the yes/no margin came out with a negative weight (probably tracking answer length, HaluEval QA's
# artifact, more than support) and the cosine with almost none: the likelihood gain carries it.
CALIBRATION: dict[str, dict[str, float]] = {
    "likelihood": {"bias": -1.729, "margin": -0.48, "gain": 1.037, "cosine": 0.0},
    "embedding": {"bias": -0.832, "margin": 0.0, "gain": 0.0, "cosine": 1.262},
    "combined": {"bias": -1.554, "margin": -0.472, "gain": 1.042, "cosine": -0.267},
}

SYSTEM = "You check answers against a context. Reply with Yes or No only."
QUESTION = "Is the answer supported by the context? Reply Yes or No."

_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[a-z0-9][.!?])(?=[A-Z][a-z])|\n\s*\n|\n(?=\s*[-*\d])")
_ABBREV = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e|U\.S|No|Inc|Ltd|Co)\.|\b[A-Z]\.)$")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a plain rule: end punctuation then a capital, or a blank line),
    keeping common abbreviations and initials ("Dr.", "J. Smith") inside their sentence."""
    parts: list[str] = []
    for piece in _SPLIT.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if parts and _ABBREV.search(parts[-1]):
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return parts


def _context_passages(context: Any) -> list[str]:
    if isinstance(context, str):
        return [context]
    if isinstance(context, list | tuple):
        out = []
        for c in context:
            if isinstance(c, Mapping):
                c = next((c[k] for k in ("content", "text", "page_content") if isinstance(c.get(k), str)), c)
            out.append(text_of(c))
        return out
    return [text_of(context)]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Faithfulness(Scorer):
    """Share of the output's claims supported by ``context``, from the local model's
    log-probabilities and MiniLM embeddings (no judge); ``threshold`` (0.5) on the share."""

    type = "faithfulness"
    direction = "higher"
    default_threshold = 0.5

    def __init__(
        self,
        *,
        method: str = "combined",
        claim_threshold: float = 0.5,
        aggregate: str = "share",
        max_claims: int = 20,
        model: Any = None,
        embedder: Any = None,
        threshold: float | None = None,
        name: str | None = None,
        weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        if method not in METHODS:
            raise ScorerConfigError(f"{self.name}: `method` must be one of {', '.join(METHODS)}, got {method!r}")
        if (isinstance(claim_threshold, bool) or not isinstance(claim_threshold, int | float)
                or not 0.0 < claim_threshold < 1.0):
            raise ScorerConfigError(f"{self.name}: `claim_threshold` must be a probability between 0 and 1 "
                                    f"(exclusive), got {claim_threshold!r}")
        if aggregate not in ("share", "min"):
            raise ScorerConfigError(f"{self.name}: `aggregate` must be 'share' (supported claims / claims) or "
                                    f"'min' (the weakest claim's probability), got {aggregate!r}")
        if isinstance(max_claims, bool) or not isinstance(max_claims, int) or max_claims < 1:
            raise ScorerConfigError(f"{self.name}: `max_claims` must be a whole number >= 1, got {max_claims!r}")
        if model is not None and not callable(getattr(model, "response_logprobs", None)):
            raise ScorerConfigError(f"{self.name}: `model` must have response_logprobs(messages, response), like "
                                    f"podium.inference.LocalChatModel; got {type(model).__name__}")
        self.method = method
        self.weights = CALIBRATION[method]
        self.claim_threshold = float(claim_threshold)
        self.aggregate = aggregate
        self.max_claims = max_claims
        self.model = model
        self.embedder = embedder
        self._declare(["output", "context"], ["input"])

    # --- signals -----------------------------------------------------------------------------

    def _model(self) -> Any:
        if self.model is None:
            from podium.evals.scorers.perplexity import default_language_model

            self.model = default_language_model()
        return self.model

    def _logp(self, messages: list[dict[str, str]], response: str) -> tuple[float, int]:
        ts = self._model().response_logprobs(messages, response)
        lps = list(ts.logprobs)
        return float(sum(lps)), len(lps)

    def _likelihood(self, context: str, claims: list[str], question: str | None) -> list[tuple[float, float]]:
        """``(yes/no margin, per-token likelihood gain)`` per claim. The claims without context go
        first; then every prompt starts with the same system message, context and question, so
        llama.cpp keeps that prefix's KV cache and only the tail of each prompt is evaluated."""
        q = f"\n\nQuestion: {question}" if question else ""
        system = {"role": "system", "content": SYSTEM}
        bare_prompt = [system, {"role": "user", "content": f"Question: {question}" if question else "Say something."}]
        bare = [self._logp(bare_prompt, c)[0] for c in claims]
        out = []
        for claim, lp_bare in zip(claims, bare, strict=True):
            lp_ctx, n = self._logp([system, {"role": "user", "content": f"Context:\n{context}{q}"}], claim)
            ask = [system, {"role": "user", "content": f"Context:\n{context}{q}\n\nAnswer: {claim}\n\n{QUESTION}"}]
            lp_yes, _ = self._logp(ask, "Yes")
            lp_no, _ = self._logp(ask, "No")
            out.append((lp_yes - lp_no, (lp_ctx - lp_bare) / max(n, 1)))
        return out

    def _cosines(self, claims: list[str], sentences: list[str], question: str | None) -> tuple[list[float], list[int]]:
        import numpy as np

        from podium.evals.scorers.semantic import _embed, default_embedder

        embedder = self.embedder if self.embedder is not None else default_embedder()
        texts = [f"{question} {c}" if question else c for c in claims] + sentences
        vecs = _embed(embedder, texts)
        sims = vecs[: len(claims)] @ vecs[len(claims):].T
        best = np.argmax(sims, axis=1)
        return [float(sims[i, j]) for i, j in enumerate(best)], [int(j) for j in best]

    # --- scoring -----------------------------------------------------------------------------

    def compute(self, output: Any, context: Any, input: Any = None) -> Score:
        text = text_of(output).strip()
        passages = [p for p in _context_passages(context) if p.strip()]
        if not passages:
            raise ScorerError(f"{self.name}: the context is empty; give the retrieved passages as `context`",
                              scorer=self.name)
        claims = split_sentences(text)
        truncated = len(claims) > self.max_claims
        claims = claims[: self.max_claims]
        meta: dict[str, Any] = {"method": self.method, "claims": [], "truncated": truncated}
        if not claims:
            return Score(1.0, explanation="the output makes no claims", metadata=meta)
        question = text_of(input).strip() if input is not None else None
        context_str = "\n\n".join(passages)
        sentences = [s for p in passages for s in split_sentences(p)]
        w = self.weights
        cos, evidence = self._cosines(claims, sentences, question)  # evidence is reported whatever the method
        likelihood: list[tuple[float | None, float | None]] = [(None, None)] * len(claims)
        if w["margin"] or w["gain"]:
            try:
                likelihood = list(self._likelihood(context_str, claims, question))
            except Exception as e:  # too long for the model's window, mostly: the message says so
                raise ScorerError(f"{self.name}: the local model could not score the claims: {e}",
                                  scorer=self.name) from e
        rows: list[dict[str, Any]] = []
        probs: list[float] = []
        for i, claim in enumerate(claims):
            margin, gain = likelihood[i]
            z = w["bias"] + w["cosine"] * cos[i] + w["margin"] * (margin or 0.0) + w["gain"] * (gain or 0.0)
            p = _sigmoid(z)
            probs.append(p)
            rows.append({"claim": claim, "probability": round(p, 4), "supported": p >= self.claim_threshold,
                         "evidence": sentences[evidence[i]], "cosine": round(cos[i], 4),
                         "margin": None if margin is None else round(margin, 4),
                         "gain": None if gain is None else round(gain, 4)})
        meta["claims"] = rows
        supported = sum(1 for r in rows if r["supported"])
        value = aggregate_claims(probs, self.claim_threshold, self.aggregate)
        why = f"{supported} of {len(rows)} claims supported by the context ({self.method})"
        weak = [r["claim"] for r in rows if not r["supported"]]
        if weak:
            why += "; unsupported: " + "; ".join(repr(c) for c in weak[:5])
        return Score(value, explanation=why, metadata=meta)

    def signals(self, output: str, context: Any, input: str | None = None) -> list[dict[str, Any]]:
        """Every signal of every claim, whatever the method (the benchmark calibrates on these)."""
        passages = _context_passages(context)
        claims = split_sentences(text_of(output).strip())[: self.max_claims]
        sentences = [s for p in passages for s in split_sentences(p)]
        cos, _ = self._cosines(claims, sentences, input)
        lik = self._likelihood("\n\n".join(passages), claims, input)
        return [{"claim": c, "margin": m, "gain": g, "cosine": x}
                for c, (m, g), x in zip(claims, lik, cos, strict=True)]

    def probability(self, signals: Mapping[str, float]) -> float:
        """A claim's support probability from its signals under this scorer's method."""
        w = self.weights
        return _sigmoid(w["bias"] + sum(w[k] * float(signals.get(k) or 0.0) for k in ("margin", "gain", "cosine")))


def aggregate_claims(probabilities: Sequence[float], claim_threshold: float = 0.5, how: str = "share") -> float:
    """The item's value from its claims' probabilities (``share`` or ``min``), as the scorer computes it."""
    if not probabilities:
        return 1.0
    if how == "min":
        return min(probabilities)
    return sum(1 for p in probabilities if p >= claim_threshold) / len(probabilities)

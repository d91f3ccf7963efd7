"""Retrieval scorers on hand-computed cases, looked up through the plugin registry."""

from __future__ import annotations

import math
from typing import Any

import pytest

from podium.evals.scorers import scorer_from_assertion, scorer_specs


def _score(kind: str, output: Any, expected: Any, **params: Any) -> float:
    s = scorer_from_assertion({"type": kind, **params})
    v = s.score({"output": output, "expected": expected}).numeric
    assert v is not None
    return v


RANKED = ["d3", "d1", "d7", "d2", "d9"]  # relevant: d1 (rank 2), d2 (rank 4); d5 never retrieved
REL = ["d1", "d2", "d5"]


def test_registered_through_the_plugin_contract() -> None:
    specs = {s.type: s for s in scorer_specs()}
    for name in ("hit-rate", "mrr", "ndcg", "context-precision", "context-recall"):
        assert specs[name].category == "retrieval"


def test_hit_rate_at_k() -> None:
    assert _score("hit-rate", RANKED, REL) == 1.0
    assert _score("hit-rate", RANKED, REL, k=1) == 0.0
    assert _score("hit-rate", RANKED, REL, k=2) == 1.0


def test_mrr() -> None:
    assert _score("mrr", RANKED, REL) == 0.5
    assert _score("mrr", RANKED, REL, k=1) == 0.0
    assert _score("mrr", ["x", "y", "d5"], REL) == pytest.approx(1 / 3)


def test_ndcg_binary_and_graded() -> None:
    # DCG = 1/log2(3) + 1/log2(5); ideal over 3 relevant ids in the top 5 = 1 + 1/log2(3) + 1/2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 0.5
    assert _score("ndcg", RANKED, REL) == pytest.approx(dcg / idcg)
    # k=2: DCG = 1/log2(3); ideal = 1 + 1/log2(3)
    assert _score("ndcg", RANKED, REL, k=2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # graded: d1=3, d2=1 -> DCG = 3/log2(3) + 1/log2(5); ideal = 3 + 1/log2(3)
    assert _score("ndcg", RANKED, {"d1": 3, "d2": 1}) == pytest.approx(
        (3 / math.log2(3) + 1 / math.log2(5)) / (3 + 1 / math.log2(3)))
    assert _score("ndcg", ["d1", "d2"], ["d1", "d2"]) == pytest.approx(1.0)


def test_context_precision_and_recall() -> None:
    # relevant at ranks 2 and 4: (1/2 + 2/4) / 2 = 0.5
    assert _score("context-precision", RANKED, REL) == pytest.approx(0.5)
    assert _score("context-precision", ["d1", "d2", "x"], REL) == pytest.approx(1.0)
    assert _score("context-precision", ["x", "y"], REL) == 0.0
    assert _score("context-recall", RANKED, REL) == pytest.approx(2 / 3)
    assert _score("context-recall", RANKED, REL, k=3) == pytest.approx(1 / 3)


def test_hits_from_search_output_match_chunk_or_document_ids() -> None:
    out = {"data": [{"id": "guide.md#2", "document_id": "guide.md"}, {"id": "faq.md#0", "document_id": "faq.md"},
                    {"id": "guide.md#0", "document_id": "guide.md"}]}
    # a document counts once, at its best rank
    assert _score("context-recall", out, {"relevant": ["guide.md"]}) == 1.0
    assert _score("context-precision", out, ["guide.md"]) == 1.0
    assert _score("mrr", out, ["faq.md#0"]) == 0.5
    assert _score("mrr", out, ["faq.md#0"], by="document") == 0.0  # chunk ids are not documents
    assert _score("hit-rate", out, ["guide.md#0"], by="chunk", k=2) == 0.0


def test_threshold_gates_and_bad_params() -> None:
    s = scorer_from_assertion({"type": "hit-rate", "k": 1, "threshold": 1})
    assert s.score({"output": ["d1"], "expected": ["d1"]}).passed is True
    assert s.score({"output": ["x", "d1"], "expected": ["d1"]}).passed is False
    with pytest.raises(Exception, match="positive integer"):
        scorer_from_assertion({"type": "mrr", "k": 0})

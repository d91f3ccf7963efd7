"""Topics: how the current window spreads over the reference's topic clusters, and which
current clusters are new.

1. The reference embeddings are clustered (scikit-learn KMeans, ``k`` about sqrt(n/2), 2..12);
   each current text goes to its nearest reference cluster. A chi-square test on the two
   spreads (:func:`podium.monitor.drift.stattests.categorical_drift`) is the topic shift.
2. Novelty: a current text is *novel* when its nearest reference text is less similar (cosine)
   than the ``novelty_quantile`` (5%) of reference texts are to their own nearest neighbour.
3. The current texts are clustered the same way; a current cluster is a **new topic** when most
   of its texts (``min_novel_share``, 60%) are novel and it holds at least ``min_size`` texts
   and ``min_share`` of the window. Each new topic comes with its size, its share, the words
   it uses far more than the reference (keywords) and the texts nearest its centre (examples).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TopicFindings", "find_topics"]

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_STOP = frozenset(
    ["the", "and", "for", "are", "but", "not", "you", "your", "with", "this", "that", "have", "from", "they", "will", "would", "there", "their", "what", "when", "which", "about", "into", "than", "then", "them", "these", "those", "been", "were", "was", "has", "had", "can", "could", "should", "our", "out", "all", "any", "how", "who", "why", "its", "it's", "also", "just", "more", "most", "some", "such", "only", "other", "very", "over", "under", "again", "where", "here", "does", "did", "doing"]
)


@dataclass
class TopicFindings:
    reference_labels: list[str]
    current_labels: list[str]
    new_topics: list[dict[str, Any]]
    novel_share: float
    novelty_threshold: float


def _k(n: int) -> int:
    return max(2, min(12, round(math.sqrt(n / 2))))


def _kmeans(x: np.ndarray, k: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(k, len(x)), random_state=0, n_init=3).fit(x)


def _words(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP]


def _keywords(members: Sequence[str], reference: Sequence[str], top: int = 5) -> list[str]:
    cur = Counter(w for x in members for w in set(_words(x)))
    ref = Counter(w for x in reference for w in set(_words(x)))
    n, m = max(len(members), 1), max(len(reference), 1)
    scored = [(c / n - ref.get(w, 0) / m, w) for w, c in cur.items() if c >= 2]
    return [w for s, w in sorted(scored, key=lambda sw: (-sw[0], sw[1])) if s > 0][:top]


def find_topics(reference: np.ndarray, current: np.ndarray, ref_texts: Sequence[str], cur_texts: Sequence[str],
                *, novelty_quantile: float = 0.05, min_novel_share: float = 0.6, min_size: int = 3,
                min_share: float = 0.03, examples: int = 3) -> TopicFindings:
    """Reference/current cluster labels and the new topic clusters (rows are L2-normalised)."""
    ref = np.asarray(reference, dtype=np.float32)
    cur = np.asarray(current, dtype=np.float32)
    km = _kmeans(ref, _k(len(ref)))
    # a reference cluster's label: its number and the two words it uses most over the reference
    names: dict[int, str] = {}
    for c in range(km.n_clusters):
        kw = _keywords([ref_texts[int(i)] for i in np.flatnonzero(km.labels_ == c)], ref_texts, top=2)
        names[c] = f"{c}: {', '.join(kw)}" if kw else f"topic {c}"
    ref_labels = [names[int(x)] for x in km.labels_]
    cur_labels = [names[int(x)] for x in km.predict(cur)]

    rr = ref @ ref.T
    np.fill_diagonal(rr, -np.inf)
    ref_nn = rr.max(axis=1)
    threshold = float(np.quantile(ref_nn, novelty_quantile))
    cur_nn = (cur @ ref.T).max(axis=1)
    novel = cur_nn < threshold

    new_topics: list[dict[str, Any]] = []
    if novel.sum() >= min_size:
        ck = _kmeans(cur, _k(len(cur)))
        for c in range(ck.n_clusters):
            idx = np.flatnonzero(ck.labels_ == c)
            size = len(idx)
            if size < max(min_size, math.ceil(min_share * len(cur))):
                continue
            share_novel = float(novel[idx].mean())
            if share_novel < min_novel_share:
                continue
            centre = ck.cluster_centers_[c]
            nearest: list[int] = []
            for i in idx[np.argsort(-(cur[idx] @ centre))]:  # the closest distinct texts
                if all(cur_texts[int(i)] != cur_texts[j] for j in nearest):
                    nearest.append(int(i))
                if len(nearest) == examples:
                    break
            members = [cur_texts[int(i)] for i in idx]
            new_topics.append({
                "size": int(size),
                "share": round(size / len(cur), 4),
                "novel_share": round(share_novel, 4),
                "similarity_to_reference": round(float(cur_nn[idx].mean()), 4),
                "keywords": _keywords(members, ref_texts),
                "examples": [cur_texts[i][:500] for i in nearest],
            })
    new_topics.sort(key=lambda t: -t["size"])
    return TopicFindings(ref_labels, cur_labels, new_topics, float(novel.mean()) if len(cur) else 0.0, threshold)

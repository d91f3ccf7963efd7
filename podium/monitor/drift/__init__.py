"""Drift monitors: compare a reference window (or a dataset) with the current window of a
scope's traces: input/output embeddings (domain-classifier AUC with a p-value), lengths,
languages, topics and scores, and new topic clusters with examples (docs/drift.md).

evidently (the ``monitor`` extra) is imported only when a run computes statistics.
"""

"""Online evaluation: rules that judge production traces as they arrive (docs/online-evaluation.md).

``rules`` validates a rule (filter, sample rate, scorers, mapping, target); ``mapping`` resolves
variable paths (``trace.output``, ``span[name=retrieve].output``) into scorer fields; ``scorers``
builds a rule's scorers (registered scorers, guardrail scanners, LLM judges through
``judge``, the gateway with an AIMD limiter); ``producer`` enqueues matching traces from each
rule's cursor and ``evaluator`` scores them; ``backfill`` enqueues a time range.
"""

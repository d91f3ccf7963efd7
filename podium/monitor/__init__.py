"""Monitoring: online evaluation, the background worker and its job queue, annotation
queues, drift monitors and alert rules. Used by the server (which runs the worker in-process
by default) and the CLI (``podium worker``). See ``podium/monitor/README.md``."""

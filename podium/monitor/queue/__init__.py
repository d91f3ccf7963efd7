"""The job queue the worker claims from: see :mod:`podium.monitor.queue.base`."""

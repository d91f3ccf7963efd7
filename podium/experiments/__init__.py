"""Experiments: the client-side engine that runs a task over a dataset and scores it.

``podium.evaluate(...)`` is :func:`podium.experiments.runner.evaluate` with the default SDK
client; here the client is always a parameter::

    import podium
    from podium.experiments import PromptTask, evaluate

    task = PromptTask("Capital of {{country}}?", model="local", base_url=URL, api_key=SK)
    result = evaluate(dataset="capitals", task=task, scorers=["icontains"], client=podium.get_client())

It sits above the SDK (it runs tasks in traces and records through ``podium.sdk.evals``) and
above ``podium.evals`` (scorers, statistics). See ``podium/experiments/README.md`` and
``docs/evals.md``.
"""

from podium.experiments.runner import ExperimentResult, Interrupted, RunConfig, Runner, evaluate
from podium.experiments.tasks import HttpTask, PromptTask, PythonTask, RateLimited, TaskOutput, TransientError

__all__ = [
    "ExperimentResult",
    "HttpTask",
    "Interrupted",
    "PromptTask",
    "PythonTask",
    "RateLimited",
    "RunConfig",
    "Runner",
    "TaskOutput",
    "TransientError",
    "evaluate",
]

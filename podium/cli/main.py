"""The `podium` command."""

from __future__ import annotations

import typer

from podium.cli.commands.alerts import alerts_app
from podium.cli.commands.audit import audit_app
from podium.cli.commands.collections import collections_app
from podium.cli.commands.data import legal_hold_app, retention_app, subjects_app
from podium.cli.commands.deploy import deploy_app
from podium.cli.commands.evals import datasets_app, eval_app
from podium.cli.commands.evaluators import evaluators_app
from podium.cli.commands.explain import explain_app
from podium.cli.commands.gateway import chat, gateway, limits_app, models_app
from podium.cli.commands.guard import guard_app
from podium.cli.commands.plugins import plugins_app
from podium.cli.commands.projects import keys_app, projects_app
from podium.cli.commands.prompts import prompts_app
from podium.cli.commands.redaction import redaction_app
from podium.cli.commands.redteam import redteam_app
from podium.cli.commands.registry import registry_app
from podium.cli.commands.secrets import secrets_app
from podium.cli.commands.server import db_app, up
from podium.cli.commands.traces import traces_app
from podium.cli.commands.tune import tune_app
from podium.cli.commands.users import users_app
from podium.cli.commands.worker import worker

__all__ = ["app", "main"]

app = typer.Typer(
    help="Podium: self-hosted LLMOps. Start with `podium up`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up")(up)
app.add_typer(db_app, name="db")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(traces_app, name="traces")
app.add_typer(prompts_app, name="prompts")
app.add_typer(eval_app, name="eval")
app.add_typer(datasets_app, name="datasets")
app.add_typer(collections_app, name="collections")
app.command("gateway")(gateway)
app.add_typer(models_app, name="models")
app.add_typer(limits_app, name="limits")
app.command("chat")(chat)
app.add_typer(plugins_app, name="plugins")
app.add_typer(redteam_app, name="redteam")
app.add_typer(guard_app, name="guard")
app.add_typer(explain_app, name="explain")  # SHAP, LIME, occlusion, integrated gradients (docs/explain.md)
app.add_typer(evaluators_app, name="evaluators")  # online evaluation rules (docs/online-evaluation.md)
app.command("worker")(worker)  # background jobs outside the server (docs/worker.md)
app.add_typer(alerts_app, name="alerts")
app.add_typer(registry_app, name="registry")  # the model registry (docs/registry.md)
app.add_typer(deploy_app, name="deploy")  # canary deployments (docs/canary.md)
app.add_typer(tune_app, name="tune")  # training data from production (docs/training-data.md)
app.add_typer(retention_app, name="retention")  # retention periods (docs/governance.md#retention)
app.add_typer(legal_hold_app, name="legal-hold")  # stops every deletion of a project
app.add_typer(subjects_app, name="subjects")  # data-subject requests (docs/governance.md#data-subject-requests)
app.add_typer(secrets_app, name="secrets")  # encryption keys of provider secrets (docs/governance.md#secrets)
app.add_typer(audit_app, name="audit")  # the audit log: list, verify, export (docs/governance.md#audit-log)
app.add_typer(redaction_app, name="redaction")  # redaction before storage (docs/governance.md#redaction)
app.add_typer(users_app, name="users")  # people: accounts, roles, invitations (docs/governance.md#people)


def main() -> None:
    app()

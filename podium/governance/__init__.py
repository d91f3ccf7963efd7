"""Governance: people (users, organisations, roles), the audit log, retention, redaction before
storage and data-subject requests (docs/governance.md). Nothing here imports the server."""

"""The model registry: registered models, immutable versions, aliases with history and
rollback, lineage. See ``podium/registry/README.md``."""

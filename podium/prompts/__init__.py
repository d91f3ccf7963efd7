"""The prompt registry's rules, above storage: see :mod:`podium.prompts.registry`."""

from podium.prompts.registry import PromptRegistry, PromptStore

__all__ = ["PromptRegistry", "PromptStore"]

"""The built-in scanners, one module per family (registered in ``podium.guardrails.builtins``)."""

"""The OpenAI-compatible gateway: aliases → deployments, routing, limits, cache, logging.

HTTP lives in ``podium.server.routes.gateway``; this package is the logic behind it.
"""

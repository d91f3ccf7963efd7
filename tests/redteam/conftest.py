"""The red-team tests reuse the gateway tests' server in front of the fake upstream."""

from tests.gateway.conftest import openai_gateway

__all__ = ["openai_gateway"]

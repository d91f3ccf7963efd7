"""Model providers: OpenAI-compatible HTTP, Anthropic, Gemini and the local models."""

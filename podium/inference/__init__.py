"""Local model runtimes: llama.cpp chat/completion/log-probabilities and ONNX sentence embeddings.

Nothing here loads a model or imports llama_cpp/onnxruntime at import time; each runtime
loads lazily, once, on first use. See :mod:`podium.inference.llama` and
:mod:`podium.inference.embeddings` for invariants and pitfalls.
"""

from podium.inference.embeddings import (
    EMBED_MODEL_NAME,
    LocalEmbedder,
    default_embed_model_dir,
    default_tokenizer_path,
)
from podium.inference.llama import (
    CHAT_MODEL_NAME,
    DEFAULT_MAX_TOKENS,
    FairLock,
    LocalChatModel,
    TextScore,
    check_chat_params,
    check_completion_params,
    default_model_path,
)

__all__ = [
    "CHAT_MODEL_NAME",
    "DEFAULT_MAX_TOKENS",
    "EMBED_MODEL_NAME",
    "FairLock",
    "LocalChatModel",
    "LocalEmbedder",
    "TextScore",
    "check_chat_params",
    "check_completion_params",
    "default_embed_model_dir",
    "default_model_path",
    "default_tokenizer_path",
]

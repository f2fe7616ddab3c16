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

Refresh ahead: a cached answer used in the second half of its life is confirmed again in the
background (one `Authenticate` at a time, on a thread of its own), so a steadily active user's
calls never wait for auth_svc — before, every user's first call after each expiry did (about one
call in 13 of bench/tasks_list_bench.py, 10 users, +5 ms each under load). The answer still expires
`cache_seconds` after it was obtained unless a refresh replaced it, so the revocation delay is
unchanged; a refresh that fails leaves the entry to expire. `authenticate_cached` answers from
the caches and the known signing keys only (never a network call, an Ed25519 verification at
most): the aio interceptor uses it on the event loop and goes to a worker thread only when it
returns None.

auth_svc unreachable (or timing out) → `Unavailable` (503): never "allow", never 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    refresh_at: float  # from here on, a use of the entry refreshes it in the background
    principal: Principal | None = None
    error: DomainError | None = None


@dataclass(frozen=True)
class _Query:
    """One credential's cache slot and the Authenticate request that (re)fills it."""

    cache: dict  # type: ignore[type-arg]
    key: object
    request: auth_pb2.AuthenticateRequest
    negative: tuple[type[DomainError], ...]  # answers cached as refusals


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
        self._refresher: ThreadPoolExecutor | None = None  # started on the first refresh
        self._refreshing: set[object] = set()  # cache keys with a refresh in flight

    def close(self) -> None:
        with self._lock:
            refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.shutdown(wait=False, cancel_futures=True)
        self._channel.close()

    # -- Authenticator -----------------------------------------------------------------------

    def authenticate(self, credentials: Credentials) -> Principal:
        query = self._query(credentials, may_block=True)
        assert query is not None
        cached = self._cached(query)
        return cached if cached is not None else self._ask(query)

    def authenticate_cached(self, credentials: Credentials) -> Principal | None:
        """The answer without blocking — from the caches and the signing keys already known —
        or None when it needs auth_svc (then `authenticate` it on a worker thread). Raises
        like `authenticate` for a token that is invalid as it stands or a cached refusal."""
        query = self._query(credentials, may_block=False)
        return self._cached(query) if query is not None else None

    def _query(self, credentials: Credentials, *, may_block: bool) -> _Query | None:
        if credentials.bearer_token:
            return self._jwt_query(credentials.bearer_token, may_block)
        if credentials.api_key and credentials.api_secret:
            # Under an HMAC with a per-process salt: neither the secret nor a plain hash of it is
            # kept. Refusals are cached too, so a client retrying a bad key in a loop does not
            # become a loop against auth_svc.
            key = hmac.new(self._salt, credentials.api_key.encode() + b"\x00" + credentials.api_secret.encode(),
                           hashlib.sha256).digest()
            return _Query(self._api_keys, key, auth_pb2.AuthenticateRequest(
                api_key=credentials.api_key, api_secret=credentials.api_secret), (Unauthenticated, PermissionDenied))
        raise Unauthenticated("credentials required")

    def _jwt_query(self, token: str, may_block: bool) -> _Query | None:
        unknown_kids: list[str] = []
        if may_block:
            self._ensure_keys()
            key_for_kid = self._key_for_kid
        else:
            with self._lock:
                keys = self._keys
            if not keys:
                return None

            def key_for_kid(kid: str) -> Ed25519PublicKey | None:
                key = keys.get(kid)
                if key is None:
                    unknown_kids.append(kid)
                return key
        try:
            claims = verify_access_token(token, key_for_kid, issuer=self._issuer, audience=self._audience)
        except Unauthenticated:
            if unknown_kids:
                return None  # perhaps a key not fetched yet: the blocking path may fetch it
            raise
        # Per user and token epoch: a token from before a password change never rides on the
        # answer cached for a newer one.
        return _Query(self._users, (claims.user_id, claims.epoch), auth_pb2.AuthenticateRequest(access_token=token),
                      (PermissionDenied,))

    # -- cache -------------------------------------------------------------------------------

    def _cached(self, query: _Query) -> Principal | None:
        with self._lock:
            entry = query.cache.get(query.key)
        now = self._clock()
        if entry is None or entry.expires <= now:
            return None
        if entry.error is not None:
            raise type(entry.error)(entry.error.message)
        if now >= entry.refresh_at:
            self._refresh_soon(query)
        return entry.principal

    def _ask(self, query: _Query) -> Principal:
        """auth_svc's answer, stored (refusals too) before it is returned or raised."""
        try:
            principal = self._call(query.request)
        except query.negative as exc:
            self._store(query, error=exc)
            raise
        self._store(query, principal=principal)
        return principal

    def _store(self, query: _Query, principal: Principal | None = None, error: DomainError | None = None) -> None:
        if self.cache_seconds <= 0:
            return
        now = self._clock()
        entry = _Entry(now + self.cache_seconds, now + self.cache_seconds / 2, principal, error)
        with self._lock:
            cache = query.cache
            if len(cache) >= MAX_CACHE_ENTRIES:  # drop expired entries; if still full, start over
                for k in [k for k, e in cache.items() if e.expires <= now]:
                    del cache[k]
                if len(cache) >= MAX_CACHE_ENTRIES:
                    cache.clear()
            cache[query.key] = entry

    def _refresh_soon(self, query: _Query) -> None:
        with self._lock:
            if query.key in self._refreshing:
                return
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auth-refresh")
            self._refreshing.add(query.key)
            refresher = self._refresher
        try:
            refresher.submit(self._refresh, query)
        except RuntimeError:  # closed meanwhile
            with self._lock:
                self._refreshing.discard(query.key)

    def _refresh(self, query: _Query) -> None:
        try:
            self._ask(query)
        except DomainError:
            pass  # a refusal is stored by _ask; unavailable: the entry expires on its own time
        finally:
            with self._lock:
                self._refreshing.discard(query.key)

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

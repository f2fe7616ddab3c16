"""auth_svc settings from environment variables (read when built, never at import time)."""

from __future__ import annotations

from dataclasses import dataclass

from services.config import env_float, env_int, env_str
from services.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER


@dataclass(frozen=True)
class AuthSettings:
    access_ttl_seconds: int = 1800
    refresh_ttl_seconds: int = 14 * 24 * 3600
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    # Failed-login throttling (see throttle.py). A username is locked after
    # `max_failures_per_user` failures whose gaps are each shorter than `failure_window`;
    # a client IP after `max_failures_per_ip` (higher: several people may share a NAT).
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 20
    failure_window_seconds: float = 300.0
    lock_base_seconds: float = 1.0
    lock_max_seconds: float = 300.0
    # Peers whose `x-forwarded-for` we believe (Envoy). Only the LAST entry is used: Envoy
    # (use_remote_address: true) appends the address it saw; anything before it came from the client.
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    # How often a process re-reads the signing keys table (to pick up a rotation made elsewhere).
    keys_reload_seconds: float = 60.0
    # Optional passphrase that encrypts the private keys stored in the DB.
    keys_passphrase: str = ""
    # argon2id cost; default is OWASP's minimum recommendation (19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # Active (non-revoked, non-expired) API keys one user may hold.
    max_api_keys_per_user: int = 100

    @classmethod
    def from_env(cls) -> AuthSettings:
        proxies = env_str("ZQ_AUTH_TRUSTED_PROXIES", "127.0.0.1,::1")
        return cls(
            access_ttl_seconds=env_int("ZQ_ACCESS_TOKEN_TTL_SECONDS", 1800),
            refresh_ttl_seconds=env_int("ZQ_REFRESH_TOKEN_TTL_SECONDS", 14 * 24 * 3600),
            max_failures_per_user=env_int("ZQ_LOGIN_MAX_FAILURES", 5),
            max_failures_per_ip=env_int("ZQ_LOGIN_MAX_FAILURES_PER_IP", 20),
            failure_window_seconds=env_float("ZQ_LOGIN_FAILURE_WINDOW_SECONDS", 300.0),
            lock_base_seconds=env_float("ZQ_LOGIN_LOCK_BASE_SECONDS", 1.0),
            lock_max_seconds=env_float("ZQ_LOGIN_LOCK_MAX_SECONDS", 300.0),
            trusted_proxies=frozenset(p.strip() for p in proxies.split(",") if p.strip()),
            keys_reload_seconds=env_float("ZQ_AUTH_KEYS_RELOAD_SECONDS", 60.0),
            keys_passphrase=env_str("ZQ_AUTH_KEYS_PASSPHRASE", ""),
            argon2_time_cost=env_int("ZQ_ARGON2_TIME_COST", 2),
            argon2_memory_kib=env_int("ZQ_ARGON2_MEMORY_KIB", 19456),
            argon2_parallelism=env_int("ZQ_ARGON2_PARALLELISM", 1),
            max_api_keys_per_user=env_int("ZQ_MAX_API_KEYS_PER_USER", 100),
        )

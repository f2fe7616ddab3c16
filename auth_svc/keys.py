"""Ed25519 signing keys for access tokens, identified by `kid`.

Storage decision: the key pairs live in auth_svc's database (`signing_keys`), not in files.
Every auth_svc replica already shares that database, so all replicas sign with the same
current key and publish the same set without copying files between hosts; a rotation made by
`python -m auth_svc rotate-keys` on any host reaches every replica. The private half is PKCS#8
PEM, encrypted with ZQ_AUTH_KEYS_PASSPHRASE when that is set (recommended when the database
or its backups are readable by more people than the service should be).

Rotation keeps the newest two keys: the new one signs, the previous one still verifies tokens
it signed until they expire. Rotating twice within one access-token lifetime (30 min by
default) drops the key of some still-unexpired tokens; their holders just refresh.

Each process caches the keys and re-reads the table every `reload_seconds`, and immediately
(at most once a second) when it meets a `kid` it does not know, which is how a token signed
by a replica that already saw a rotation verifies here.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import repository as repo
from auth_svc.models import SigningKey
from services.db import transaction

KEEP_KEYS = 2  # current + previous
MIN_RELOAD_INTERVAL = 1.0  # seconds between unknown-kid reloads (an attacker can send random kids)


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    public_key_pem: str
    created_at: datetime


def new_signing_key(passphrase: str = "", now: datetime | None = None) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    created = now or datetime.now(UTC)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return SigningKey(
        kid=f"ed25519-{created:%Y%m%d}-{secrets.token_hex(6)}",
        private_key_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode(),
        public_key_pem=private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        created_at=created,
    )


def _load(row: SigningKey, passphrase: str) -> LoadedKey:
    private = serialization.load_pem_private_key(row.private_key_pem.encode(), passphrase.encode() or None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"signing key {row.kid} is not Ed25519")
    return LoadedKey(row.kid, private, private.public_key(), row.public_key_pem, row.created_at)


class NoSigningKey(RuntimeError):
    pass


class KeyRing:
    """The process's view of the signing keys (thread-safe)."""

    def __init__(self, session_factory: sessionmaker[Session], *, passphrase: str = "",
                 reload_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._sf = session_factory
        self._passphrase = passphrase
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[LoadedKey] = []
        self._loaded_at = float("-inf")

    # -- reading ---------------------------------------------------------------------------

    def reload(self) -> None:
        with self._sf() as session:
            rows = repo.list_signing_keys(session)
        keys = [_load(r, self._passphrase) for r in rows]
        with self._lock:
            self._keys = keys
            self._loaded_at = self._clock()

    def _fresh(self) -> list[LoadedKey]:
        with self._lock:
            keys, stale = self._keys, self._clock() - self._loaded_at >= self._reload_seconds
        if stale:
            self.reload()
            with self._lock:
                keys = self._keys
        return keys

    def current(self) -> LoadedKey:
        keys = self._fresh()
        if not keys:
            raise NoSigningKey("no signing key: run `python -m auth_svc rotate-keys` or start the server")
        return keys[0]

    def published(self) -> list[LoadedKey]:
        """Every key that may have signed a still-valid token, current first."""
        return list(self._fresh())

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        for key in self._fresh():
            if key.kid == kid:
                return key.public_key
        with self._lock:
            may_reload = self._clock() - self._loaded_at >= MIN_RELOAD_INTERVAL
        if may_reload:
            self.reload()
            for key in self._fresh():
                if key.kid == kid:
                    return key.public_key
        return None

    # -- writing ---------------------------------------------------------------------------

    def ensure_key(self) -> None:
        """Creates the first key if the table is empty (first start)."""
        with transaction(self._sf) as session:
            if not repo.list_signing_keys(session):
                repo.add_signing_key(session, new_signing_key(self._passphrase))
        self.reload()

    def rotate(self) -> str:
        """Adds a new current key and drops all but the newest KEEP_KEYS. Returns the new kid."""
        with transaction(self._sf) as session:
            newest = repo.list_signing_keys(session)
            now = datetime.now(UTC)
            if newest and newest[0].created_at >= now:  # keep "newest signs" well defined
                now = newest[0].created_at + timedelta(milliseconds=1)
            key = new_signing_key(self._passphrase, now)
            repo.add_signing_key(session, key)
            session.flush()
            rows = repo.list_signing_keys(session)
            repo.delete_signing_keys(session, [r.kid for r in rows[KEEP_KEYS:]])
        self.reload()
        return key.kid

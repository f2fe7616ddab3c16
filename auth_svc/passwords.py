"""argon2id password hashing (argon2-cffi).

`verify` returns whether the password matches and, if the stored hash was made with weaker
parameters than today's, a new hash to store (rehash on login). `dummy_verify` burns the same
time as a real verification for usernames that do not exist, so response timing does not
reveal which usernames are registered.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    new_hash: str | None = None  # set when the caller should replace the stored hash


class Passwords:
    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, hash_len=32, salt_len=16,
            type=Type.ID,
        )
        # A real hash of a random password with today's parameters: verifying against it costs
        # exactly what a real verification costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> VerifyResult:
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(False)
        if self._hasher.check_needs_rehash(stored_hash):
            return VerifyResult(True, self._hasher.hash(password))
        return VerifyResult(True)

    def dummy_verify(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy_hash, password)

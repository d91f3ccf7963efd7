"""Password hashing: argon2id (RFC 9106), through ``argon2-cffi``.

Parameters: RFC 9106's second recommended option (64 MiB of memory, 3 passes, 4 lanes), about
50-100 ms per hash on one core. A hash made with other parameters still verifies, and
:func:`needs_rehash` tells the login to store a fresh one. A login for an unknown email still
runs one verification against a dummy hash (:func:`verify_dummy`), so timing does not tell
which emails have accounts.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import Type

from podium.errors import ValidationFailed

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "PARAMS", "check_policy", "hash_password", "needs_rehash",
           "verify_dummy", "verify_password"]

#: argon2id with RFC 9106's "second recommended" parameters.
TIME_COST, MEMORY_COST, PARALLELISM = 3, 64 * 1024, 4
PARAMS = {"type": Type.ID, "time_cost": TIME_COST, "memory_cost": MEMORY_COST, "parallelism": PARALLELISM,
          "hash_len": 32, "salt_len": 16}
MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing a megabyte-long "password" is a denial of service, not a password


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST, parallelism=PARALLELISM, hash_len=32,
                          salt_len=16, type=Type.ID)


def check_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing (or absurdly long)."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"the password must have at least {MIN_LENGTH} characters; a passphrase of "
                               "four or more words is easy to remember and hard to guess")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"the password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id PHC string (``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``) after the policy check."""
    check_policy(password)
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash (False for no hash, a bad hash or an overlong password)."""
    if not stored or len(password) > MAX_LENGTH:
        verify_dummy(password[:MAX_LENGTH])
        return False
    try:
        return _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than :data:`PARAMS` (store a fresh hash)."""
    try:
        return _hasher().check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


@lru_cache(maxsize=1)
def _dummy() -> str:
    return _hasher().hash("podium-dummy-password-for-timing")


def verify_dummy(password: str) -> None:
    """Spend the time one verification takes (logins for unknown emails)."""
    try:
        _hasher().verify(_dummy(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass

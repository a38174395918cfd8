"""Staff passwords: argon2id hashes (PHC strings), checked in about the same time whether the user exists or not.

The default parameters suit a small host (2 cores): 64 MiB, 3 passes, 2 lanes, about 0.1 s per check, which
bounds what a login flood costs (logins are rate-limited too, see :mod:`nbhosting_core.staff`). A hash made with
other parameters still verifies, and :meth:`Passwords.needs_rehash` says to replace it at the next login.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import InvalidInput

#: bounds on a password: long enough to matter, short enough that hashing one costs nothing unusual
MIN_LENGTH = 10
MAX_LENGTH = 1024


def check_password(password: str) -> str:
    """``password`` if it may be set; else :class:`~nbhosting_core.errors.InvalidInput` saying why."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"A password has at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"A password has at most {MAX_LENGTH} characters.")
    if not password.isprintable():
        raise InvalidInput("A password has no control characters.")
    return password


class Passwords:
    """Hash and verify passwords with argon2id.

    Args:
        time_cost, memory_cost (KiB), parallelism: argon2's parameters; tests pass tiny ones.
    """

    def __init__(self, *, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 2) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        # verified against when the user is unknown or has no password: the same work as a real check
        self._dummy = self._hasher.hash("not a password: the hash verified for unknown users")

    def hash(self, password: str) -> str:
        """The argon2id PHC string of ``password`` (checked by :func:`check_password` first)."""
        return self._hasher.hash(check_password(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``; None (no password set) verifies a dummy and says no."""
        if len(password) > MAX_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than these (replace it at the next login)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

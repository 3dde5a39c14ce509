"""Passwords, session tokens and Hedera key proofs.

Passwords are hashed with Argon2id (``argon2-cffi``: 64 MiB, 3 passes, ~0.15 s of one core each).
The routes hash through ``PasswordHashing``: off the event loop (which ticks the game), at most
``server_password_hash_workers`` at once, at most ``server_password_hash_queue`` waiting behind
them (beyond: ``HashingBusyError``, 503 ``busy``), so a flood of sign-ins queues instead of taking
the game's CPU and gigabytes of memory. A session token is 32 random bytes shown to
the client once (cookie ``cl_session`` or ``Authorization: Bearer``); only its SHA-256 is stored.
Linking a Hedera account: the server issues a random challenge; the client signs its UTF-8 bytes
with the account's key (ED25519 or ECDSA secp256k1, as Hedera wallets hold); the server verifies
the signature with the public key, then (``routes/auth.py``) asks the network which key controls
the account: the proof counts only if it is that key.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from hiero_sdk_python import PublicKey

from crowdlearning.errors import CrowdLearningError

__all__ = [
    "DUMMY_HASH",
    "HashingBusyError",
    "KeyProofError",
    "PasswordHashing",
    "hash_password",
    "hash_token",
    "new_challenge",
    "new_token",
    "verify_key_proof",
    "verify_password",
]

_hasher = PasswordHasher()
DUMMY_HASH = _hasher.hash("not any player's password")  # verified for unknown names
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER header of a raw key


class KeyProofError(CrowdLearningError):
    """A Hedera key or signature is malformed or does not match the challenge."""


class HashingBusyError(CrowdLearningError):
    """Too many sign-ups and sign-ins are waiting for a password hash; ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


T = TypeVar("T")


class PasswordHashing:
    """Argon2id on ``workers`` threads of its own; ``queue`` callers may wait for them.

    Awaited from the event loop (and only there: the count of callers is not locked)."""

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers {workers} must be >= 1 and queue {queue} >= 0")
        self.workers, self.queue = workers, queue
        self.callers = 0  # hashing or waiting to
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self.callers >= self.workers + self.queue:
            raise HashingBusyError("too many sign-ups and sign-ins at once; try again shortly")
        self.callers += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.callers -= 1


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_challenge() -> str:
    return "crowdlearning-link:" + secrets.token_hex(24)


def verify_key_proof(public_key_hex: str, challenge: str, signature_hex: str) -> PublicKey:
    """The public key, if ``signature_hex`` signs ``challenge`` under it; else ``KeyProofError``.

    ``public_key_hex``: raw ED25519 (32 bytes), raw ECDSA secp256k1 (33 compressed or 65
    uncompressed bytes) or DER, in hex. ECDSA signatures are over the message's keccak-256, as
    Hedera signs."""
    try:
        raw = bytes.fromhex(public_key_hex)
        if len(raw) == 32:
            key = PublicKey.from_der(_ED25519_SPKI_PREFIX + raw)
        elif len(raw) in (33, 65):
            key = PublicKey.from_bytes_ecdsa(raw)
        else:
            key = PublicKey.from_der(raw)
        signature = bytes.fromhex(signature_hex)
    except (ValueError, TypeError) as exc:
        raise KeyProofError(
            f"public key or signature is not valid hex / ED25519 / ECDSA: {exc}") from exc
    try:
        key.verify(signature, challenge.encode())
    except Exception as exc:  # the SDK raises the crypto library's InvalidSignature
        raise KeyProofError("the signature does not match the challenge and key") from exc
    return key

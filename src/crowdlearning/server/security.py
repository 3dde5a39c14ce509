"""Passwords, session tokens and Hedera key proofs.

Passwords are hashed with Argon2id (``argon2-cffi``). A session token is 32 random bytes shown to
the client once (cookie ``cl_session`` or ``Authorization: Bearer``); only its SHA-256 is stored.
Linking a Hedera account: the server issues a random challenge; the client signs its UTF-8 bytes
with the account's key (ED25519 or ECDSA secp256k1, as Hedera wallets hold); the server verifies
the signature with the public key, then (``routes/auth.py``) asks the network which key controls
the account: the proof counts only if it is that key.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from hiero_sdk_python import PublicKey

from crowdlearning.errors import CrowdLearningError

__all__ = [
    "DUMMY_HASH",
    "KeyProofError",
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

"""Signature checks: does a SignatureMap satisfy a Key over some body bytes?

Supports the key shapes the SDK produces: ED25519 (32-byte public key, signature over the body
bytes) and ECDSA secp256k1 (33-byte compressed public key, 64-byte ``r || s`` signature over the
keccak-256 hash of the body bytes), plus KeyList (all must sign) and ThresholdKey (at least n).
"""

from __future__ import annotations

from Crypto.Hash import keccak
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from hiero_sdk_python.hapi.services import basic_types_pb2

__all__ = ["is_supported_key", "key_is_satisfied"]


def is_supported_key(key: basic_types_pb2.Key) -> bool:
    """True for an ED25519 / secp256k1 key, or a key list / threshold of supported keys."""
    kind = key.WhichOneof("key")
    if kind == "ed25519":
        return len(key.ed25519) == 32
    if kind == "ECDSA_secp256k1":
        return len(key.ECDSA_secp256k1) == 33
    if kind == "keyList":
        return len(key.keyList.keys) > 0 and all(is_supported_key(k) for k in key.keyList.keys)
    if kind == "thresholdKey":
        inner = key.thresholdKey.keys.keys
        return 0 < key.thresholdKey.threshold <= len(inner) and all(map(is_supported_key, inner))
    return False


def key_is_satisfied(
    key: basic_types_pb2.Key, sig_map: basic_types_pb2.SignatureMap, body: bytes
) -> bool:
    """Whether the signatures in ``sig_map`` over ``body`` satisfy ``key``."""
    kind = key.WhichOneof("key")
    if kind == "ed25519":
        return any(
            _verify_ed25519(key.ed25519, pair.ed25519, body)
            for pair in _pairs(sig_map, key.ed25519)
        )
    if kind == "ECDSA_secp256k1":
        public = key.ECDSA_secp256k1
        return any(
            _verify_secp256k1(public, pair.ECDSA_secp256k1, body)
            for pair in _pairs(sig_map, public)
        )
    if kind == "keyList":
        return all(key_is_satisfied(k, sig_map, body) for k in key.keyList.keys)
    if kind == "thresholdKey":
        met = sum(key_is_satisfied(k, sig_map, body) for k in key.thresholdKey.keys.keys)
        return met >= key.thresholdKey.threshold
    return False


def _pairs(
    sig_map: basic_types_pb2.SignatureMap, public: bytes
) -> list[basic_types_pb2.SignaturePair]:
    """Signature pairs whose (non-empty) prefix matches the public key."""
    return [p for p in sig_map.sigPair if p.pubKeyPrefix and public.startswith(p.pubKeyPrefix)]


def _verify_ed25519(public: bytes, signature: bytes, body: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, body)
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_secp256k1(public: bytes, signature: bytes, body: bytes) -> bool:
    if len(signature) != 64:
        return False
    digest = keccak.new(digest_bits=256, data=body).digest()
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public)
        point.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True

"""Merkle tree hashes and inclusion proofs, as RFC 6962 / RFC 9162 (Certificate Transparency).

Leaves and interior nodes are hashed with different one-byte prefixes (domain separation), so a
node can never be passed off as a leaf (the second-preimage attack on plain Merkle trees)::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")
    MTH({d0})       = leaf_hash(d0)
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two < n

Functions here take leaf *hashes* (already ``leaf_hash``-ed); an audit entry's leaf data is the
32-byte SHA-256 of its canonical record (``audit.records``). ``inclusion_path`` is RFC 6962's
PATH(m, D[n]); ``root_from_path`` is the verification algorithm of RFC 9162 section 2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_path",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf's data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node over its two children's hashes."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) over leaf hashes, in order."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index``: the sibling hashes from the leaf up to the root."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} of a tree of {n}")
    path: list[bytes] = []
    lo, hi = 0, n  # the subtree that holds the leaf, narrowed top-down; siblings come bottom-up
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo:lo + k]))
            lo += k
    path.reverse()
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` leads to from leaf hash ``leaf`` at ``index`` in a tree of
    ``size`` leaves; ``None`` when the path cannot belong to such a tree (wrong length)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     expected_root: bytes) -> bool:
    """Whether ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree ``expected_root``
    of ``size`` leaves."""
    return root_from_path(leaf, index, size, path) == expected_root

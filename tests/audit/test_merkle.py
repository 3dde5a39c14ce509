"""Merkle hashes and inclusion proofs: RFC 6962's test vectors, and properties for any tree."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crowdlearning.audit.merkle import (
    EMPTY_ROOT,
    inclusion_path,
    leaf_hash,
    node_hash,
    root,
    root_from_path,
    verify_inclusion,
)

# the leaf inputs and tree heads of the Certificate Transparency test vectors (RFC 6962 trees)
INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
PATHS = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}
LEAVES = [leaf_hash(bytes.fromhex(d)) for d in INPUTS]


def test_hashes_follow_rfc_6962() -> None:
    assert EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest() == root([]).hex()
    assert [root(LEAVES[:n]).hex() for n in range(1, 9)] == ROOTS
    # domain separation: a leaf over two hashes is not the node over them
    assert leaf_hash(LEAVES[0] + LEAVES[1]) != node_hash(LEAVES[0], LEAVES[1])


@pytest.mark.parametrize(("index", "size"), sorted(PATHS))
def test_inclusion_paths_follow_rfc_6962(index: int, size: int) -> None:
    path = inclusion_path(index, LEAVES[:size])
    assert [p.hex() for p in path] == PATHS[(index, size)]
    assert verify_inclusion(LEAVES[index], index, size, path, bytes.fromhex(ROOTS[size - 1]))


leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


@given(data=leaf_lists, pick=st.integers(min_value=0))
def test_every_leaf_is_proven_to_the_root(data: list[bytes], pick: int) -> None:
    leaves = [leaf_hash(d) for d in data]
    index = pick % len(leaves)
    path = inclusion_path(index, leaves)
    assert root_from_path(leaves[index], index, len(leaves), path) == root(leaves)
    assert len(path) <= (len(leaves) - 1).bit_length()


@given(data=leaf_lists, pick=st.integers(min_value=0), other=st.binary(max_size=40),
       shift=st.integers(min_value=1, max_value=200))
def test_a_proof_proves_nothing_else(data: list[bytes], pick: int, other: bytes,
                                     shift: int) -> None:
    leaves = [leaf_hash(d) for d in data]
    n, index = len(leaves), pick % len(leaves)
    path, top = inclusion_path(index, leaves), root(leaves)
    # another leaf, at the same place: refused
    if leaf_hash(other) != leaves[index]:
        assert not verify_inclusion(leaf_hash(other), index, n, path, top)
    # the same leaf claimed at another place or in a tree of another size: refused unless the
    # claim is the same leaf hash at a position it really has
    moved = (index + shift) % (n + shift)
    if moved != index and (moved >= n or leaves[moved] != leaves[index]):
        assert not verify_inclusion(leaves[index], moved, n, path, top)
    if n > 1:
        assert not verify_inclusion(leaves[index], index, n, path[:-1], top)
    # a path sibling changed: refused
    if path:
        forged = [bytes(32), *path[1:]] if path[0] != bytes(32) else [b"\x01" * 32, *path[1:]]
        assert not verify_inclusion(leaves[index], index, n, forged, top)


def test_impossible_positions_are_refused() -> None:
    assert root_from_path(LEAVES[0], 8, 8, []) is None
    assert root_from_path(LEAVES[0], -1, 8, []) is None
    with pytest.raises(IndexError):
        inclusion_path(3, LEAVES[:3])

"""``crowdlearning sign-link``: sign the Wallet page's challenge with a Hedera account's key.

Linking an account proves two things (``routes/auth.py``): the player holds a key (a signature of
the one-time challenge), and that key controls the account on Hedera (the server reads it on
chain). This command makes the first proof on the player's machine: it reads the private key
(typed without echo, or from a file; never an argument, which shells keep in their history),
signs the challenge's UTF-8 bytes as Hedera wallets sign (ED25519, or ECDSA secp256k1 over the
keccak-256 of the bytes), and prints one line of JSON to paste into the Wallet page (the body of
``POST /api/auth/hedera/link``). The private key never leaves this process.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crowdlearning.cli_args import usage_error

if TYPE_CHECKING:
    from hiero_sdk_python import PrivateKey

__all__ = ["link_body", "sign_link_main"]

CHALLENGE_PREFIX = "crowdlearning-link:"
ACCOUNT_ID = re.compile(r"^(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})$")


def read_private_key(text: str, *, ecdsa: bool) -> PrivateKey:
    """A private key from hex (DER, or raw 32 bytes: ED25519 unless ``ecdsa``); a ValueError
    that never repeats the text."""
    from hiero_sdk_python import PrivateKey

    text = text.strip().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
        if len(raw) == 32:
            return PrivateKey.from_bytes_ecdsa(raw) if ecdsa else PrivateKey.from_bytes_ed25519(raw)
        return PrivateKey.from_der(raw)
    except Exception:  # the SDK's errors repeat the key: none of them is shown
        raise ValueError("that is not a private key in hex (DER as Hedera tools export it, "
                         "or the raw 32 bytes)") from None


def link_body(account_id: str, key: PrivateKey, challenge: str) -> dict[str, str]:
    """The body of ``POST /api/auth/hedera/link`` proving ``key`` signed ``challenge``."""
    return {"account_id": account_id, "public_key": key.public_key().to_string_der(),
            "signature": key.sign(challenge.encode()).hex()}


def sign_link_main(argv: Sequence[str]) -> int:
    """Print the link body for the challenge; 2 for a mistake in the arguments or the key."""
    prog = "crowdlearning sign-link"
    parser = argparse.ArgumentParser(
        prog=prog, description="Sign the Wallet page's challenge with your Hedera account's "
        "private key and print the line to paste back into the page. The key is read without "
        "echo (or from --key-file) and never leaves this machine.")
    parser.add_argument("challenge", help="the challenge the Wallet page shows "
                                          f"({CHALLENGE_PREFIX}...)")
    parser.add_argument("--account", required=True,
                        help="your Hedera account id, shard.realm.num (e.g. 0.0.1234)")
    parser.add_argument("--key-file", type=Path, default=None,
                        help="a file holding the account's private key in hex (default: ask "
                             "for it, without echo)")
    parser.add_argument("--ecdsa", action="store_true",
                        help="a raw 32-byte key is ECDSA secp256k1 (default: ED25519; DER keys "
                             "say which they are)")
    args = parser.parse_args(list(argv))
    if not args.challenge.startswith(CHALLENGE_PREFIX):
        return usage_error(prog, f"the challenge starts with {CHALLENGE_PREFIX} (copy it from "
                                 "the Wallet page)")
    if not ACCOUNT_ID.match(args.account):
        return usage_error(prog, "--account is shard.realm.num in digits, e.g. 0.0.1234")
    try:
        text = (args.key_file.read_text() if args.key_file
                else getpass.getpass("private key (hex, not shown): "))
    except OSError as exc:
        return usage_error(prog, f"cannot read {args.key_file}: {exc.strerror or exc}")
    except (EOFError, KeyboardInterrupt):
        return usage_error(prog, "no private key given")
    try:
        key = read_private_key(text, ecdsa=args.ecdsa)
    except ValueError as exc:
        return usage_error(prog, str(exc))
    print(json.dumps(link_body(args.account, key, args.challenge)))
    return 0

"""Third-party clients of the payments API and their API keys (stored as SHA-256 hashes).

A key is ``cl_<prefix>_<secret>`` with 32 random bytes of secret: a fast hash is enough for keys
of that entropy (no dictionary to attack), and lets every request be checked with one indexed
lookup. Only the hash and the short prefix (to tell keys apart in listings) are stored.

A client may charge a player only within a *mandate* the player granted (through the game, not
the API): ``grant_mandate`` sets how much in total the client may still take. The player sees
and answers them on the Wallet page and the consent page (``server.routes.consent``):
``player_mandates`` lists them, ``set_allowance`` grants or changes one (idempotent on a
reference), ``revoke_mandate`` revokes one (later charges are refused; what was spent stays).
A client's consent page returns the player only to a URL under a prefix the operator registered
(``allow_return_url``, ``return_url_allowed``; the rule is in ``ledger.return_urls``).

A client may also pay out of its balance to any Hedera account (``request_client_payout``): an
ordinary ledger payout (``ledger.payouts``) from ``client:<id>`` under the id
``client_payout_id(client, payout id)``, settled by the same settlement job in the same batches
as the platform's own payouts; ``client_payout`` reads one back with its settlement.

A client withdraws its balance (``request_client_withdrawal``) as a payout of its own kind: the
same machinery under ``client_withdrawal_id(client, withdrawal id)`` (``wd:<client>:<id>``), so
withdrawal and payout ids never collide. It is funded by Hedera deposits with the memo
``client:<id>`` (``payments.deposits``); ``hedera_transaction_ids`` names the Hedera transaction
behind each deposit, payout and withdrawal transfer of a client's history.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.ledger.accounts import AccountKind, client_account, player_account
from crowdlearning.ledger.errors import (
    ChargeNotAuthorizedError,
    InvalidInputError,
    UnknownAccountError,
)
from crowdlearning.ledger.payouts import (
    Payout,
    PayoutState,
    find_payout,
    request_payout,
    settlement_of,
)
from crowdlearning.ledger.postings import get_transfer, lock_accounts, open_account, post
from crowdlearning.ledger.records import Transfer, TransferSpec
from crowdlearning.ledger.return_urls import check_prefix, is_under, parse_return_url
from crowdlearning.ledger.schema import (
    api_clients,
    api_keys,
    charge_mandates,
    client_return_urls,
)
from crowdlearning.ledger.validation import (
    DERIVED_ID_MAX,
    INT64_MAX,
    check_amount,
    check_identifier,
)

__all__ = [
    "ClientPayout",
    "Mandate",
    "allow_return_url",
    "authenticate",
    "charge",
    "client_exists",
    "client_payout",
    "client_payout_id",
    "client_withdrawal",
    "client_withdrawal_id",
    "disallow_return_url",
    "find_mandate",
    "grant_mandate",
    "hash_key",
    "hedera_transaction_ids",
    "issue_key",
    "open_client",
    "player_mandates",
    "refunded_tinybar",
    "request_client_payout",
    "request_client_withdrawal",
    "return_url_allowed",
    "return_urls",
    "revoke_key",
    "revoke_mandate",
    "set_allowance",
]


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def open_client(conn: sa.Connection, client_id: str, *, now_ns: int) -> str:
    """Create the client and its ledger account (idempotent); return the account code."""
    code = client_account(client_id)
    open_account(conn, code, AccountKind.CLIENT, now_ns=now_ns)
    exists = conn.execute(sa.select(api_clients.c.id).where(api_clients.c.id == client_id)).first()
    if exists is None:
        account_id = lock_accounts(conn, [code])[code].id
        conn.execute(
            api_clients.insert().values(id=client_id, account_id=account_id, created_at_ns=now_ns)
        )
    return code


def issue_key(conn: sa.Connection, client_id: str, *, now_ns: int) -> str:
    """A new API key for an existing client; the plaintext is returned once, never stored."""
    _require_client(conn, client_id)
    prefix = secrets.token_hex(4)
    key = f"cl_{prefix}_{secrets.token_urlsafe(32)}"
    conn.execute(
        api_keys.insert().values(
            key_hash=hash_key(key), client_id=client_id, prefix=prefix, created_at_ns=now_ns
        )
    )
    return key


def revoke_key(conn: sa.Connection, key: str, *, now_ns: int) -> None:
    """Revoke a key (idempotent)."""
    conn.execute(
        api_keys.update()
        .where(api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at_ns.is_(None))
        .values(revoked_at_ns=now_ns)
    )


def authenticate(conn: sa.Connection, key: str) -> str | None:
    """The client id owning a live key, or ``None``."""
    return conn.execute(
        sa.select(api_keys.c.client_id).where(
            api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at_ns.is_(None)
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Mandate:
    """What a player allows a client to charge: ``allowance_tinybar`` more from now on, after
    ``spent_tinybar`` charged so far (kept when revoked)."""

    client_id: str
    player_id: str
    allowance_tinybar: int
    spent_tinybar: int
    granted_at_ns: int  # the player's last grant or change (or revocation)
    updated_at_ns: int  # the last grant, change, revocation or charge
    revoked_at_ns: int | None  # set while revoked

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ns is not None


def grant_mandate(
    conn: sa.Connection, player_id: str, client_id: str, allowance_tinybar: int, *, now_ns: int
) -> None:
    """Let ``client_id`` charge ``player_id`` up to ``allowance_tinybar`` more (0 revokes)."""
    if allowance_tinybar == 0:
        player_account(player_id, AccountKind.AVAILABLE)  # validates the id
        _require_client(conn, client_id)
        if _locked_mandate(conn, client_id, player_id) is not None:
            revoke_mandate(conn, player_id, client_id, now_ns=now_ns)
        return
    set_allowance(conn, player_id, client_id, allowance_tinybar, now_ns=now_ns)


def set_allowance(
    conn: sa.Connection,
    player_id: str,
    client_id: str,
    allowance_tinybar: int,
    *,
    now_ns: int,
    ref: str | None = None,
) -> Mandate:
    """Grant or change: ``client_id`` may charge ``player_id`` ``allowance_tinybar`` more from
    now on (a revoked mandate is granted again; what was spent stays). With ``ref`` (the
    request's idempotency reference) a retry of the same grant acts once: while the mandate's
    last grant is ``ref`` it is returned unchanged."""
    check_amount(allowance_tinybar, what="allowance_tinybar")
    player_account(player_id, AccountKind.AVAILABLE)  # validates the id
    ref = None if ref is None else hashlib.sha256(ref.encode()).hexdigest()  # any length
    _require_client(conn, client_id)
    row = _locked_mandate(conn, client_id, player_id)
    if row is None:
        conn.execute(
            charge_mandates.insert().values(
                client_id=client_id,
                player_id=player_id,
                limit_tinybar=allowance_tinybar,
                used_tinybar=0,
                updated_at_ns=now_ns,
                granted_at_ns=now_ns,
                grant_ref=ref,
            )
        )
    elif ref is None or row.grant_ref != ref:
        if row.used_tinybar + allowance_tinybar > INT64_MAX:
            raise InvalidInputError(
                f"allowance_tinybar: at most {INT64_MAX - row.used_tinybar} tinybar more"
            )
        conn.execute(
            _mandate_update(client_id, player_id).values(
                limit_tinybar=row.used_tinybar + allowance_tinybar,
                updated_at_ns=now_ns,
                granted_at_ns=now_ns,
                revoked_at_ns=None,
                grant_ref=ref,
            )
        )
    found = find_mandate(conn, player_id, client_id)
    assert found is not None  # written (or found) in this transaction
    return found


def revoke_mandate(
    conn: sa.Connection, player_id: str, client_id: str, *, now_ns: int
) -> Mandate | None:
    """Revoke the mandate (idempotent): later charges are refused, what was spent stays;
    ``None`` when the player never granted ``client_id`` one."""
    row = _locked_mandate(conn, client_id, player_id)
    if row is None:
        return None
    if row.revoked_at_ns is None:
        conn.execute(
            _mandate_update(client_id, player_id).values(
                limit_tinybar=row.used_tinybar,
                updated_at_ns=now_ns,
                granted_at_ns=now_ns,
                revoked_at_ns=now_ns,
                grant_ref=None,
            )
        )
    return find_mandate(conn, player_id, client_id)


def find_mandate(conn: sa.Connection, player_id: str, client_id: str) -> Mandate | None:
    """The mandate ``player_id`` granted ``client_id``, or ``None``."""
    row = conn.execute(
        sa.select(charge_mandates).where(
            charge_mandates.c.client_id == client_id, charge_mandates.c.player_id == player_id
        )
    ).first()
    return None if row is None else _mandate(row)


def player_mandates(conn: sa.Connection, player_id: str) -> list[Mandate]:
    """Every mandate the player granted, live ones first, then by client id."""
    rows = conn.execute(
        sa.select(charge_mandates)
        .where(charge_mandates.c.player_id == player_id)
        .order_by(charge_mandates.c.client_id)
    ).all()
    found = [_mandate(row) for row in rows]
    return sorted(found, key=lambda m: m.revoked)


def _mandate(row: sa.Row) -> Mandate:
    return Mandate(
        client_id=row.client_id,
        player_id=row.player_id,
        allowance_tinybar=row.limit_tinybar - row.used_tinybar,
        spent_tinybar=row.used_tinybar,
        granted_at_ns=row.granted_at_ns if row.granted_at_ns is not None else row.updated_at_ns,
        updated_at_ns=row.updated_at_ns,
        revoked_at_ns=row.revoked_at_ns,
    )


# --- where a consent page may return the player ----------------------------------------------
def allow_return_url(conn: sa.Connection, client_id: str, url_prefix: str, *, now_ns: int) -> str:
    """Register ``url_prefix`` (``ledger.return_urls``) for the client (idempotent)."""
    prefix = check_prefix(url_prefix)
    _require_client(conn, client_id)
    exists = conn.execute(
        sa.select(client_return_urls.c.url_prefix).where(
            client_return_urls.c.client_id == client_id,
            client_return_urls.c.url_prefix == prefix,
        )
    ).first()
    if exists is None:
        conn.execute(
            client_return_urls.insert().values(
                client_id=client_id, url_prefix=prefix, created_at_ns=now_ns
            )
        )
    return prefix


def disallow_return_url(conn: sa.Connection, client_id: str, url_prefix: str) -> bool:
    """Forget a registered prefix; whether there was one."""
    done = conn.execute(
        client_return_urls.delete().where(
            client_return_urls.c.client_id == client_id,
            client_return_urls.c.url_prefix == url_prefix,
        )
    )
    return bool(done.rowcount)


def return_urls(conn: sa.Connection, client_id: str) -> list[str]:
    """The client's registered return URL prefixes."""
    query = (
        sa.select(client_return_urls.c.url_prefix)
        .where(client_return_urls.c.client_id == client_id)
        .order_by(client_return_urls.c.url_prefix)
    )
    return list(conn.execute(query).scalars())


def return_url_allowed(conn: sa.Connection, client_id: str, url: str) -> bool:
    """Whether a consent page may send the player to ``url`` for ``client_id``: a valid return
    URL under one of the client's registered prefixes (``InvalidInputError`` when ``url`` is no
    valid return URL at all)."""
    parsed = parse_return_url(url)
    return any(is_under(parsed, prefix) for prefix in return_urls(conn, client_id))


def charge(
    conn: sa.Connection, client_id: str, player_id: str, spec: TransferSpec, *, now_ns: int
) -> Transfer:
    """Post ``spec`` (player -> client) within the player's mandate; replays consume nothing."""
    row = _locked_mandate(conn, client_id, player_id)  # serializes charges of this pair
    if get_transfer(conn, spec.id) is not None:
        return post(conn, spec, now_ns=now_ns)  # a replay (or an id conflict) is post's call
    if row is not None and row.revoked_at_ns is not None:
        raise ChargeNotAuthorizedError(
            f"player {player_id} revoked client {client_id}'s mandate to charge them"
        )
    left = 0 if row is None else row.limit_tinybar - row.used_tinybar
    if spec.amount_tinybar > left:
        raise ChargeNotAuthorizedError(
            f"player {player_id} allows client {client_id} to charge {left} more tinybar, "
            f"not {spec.amount_tinybar}"
        )
    conn.execute(
        _mandate_update(client_id, player_id).values(
            used_tinybar=charge_mandates.c.used_tinybar + spec.amount_tinybar, updated_at_ns=now_ns
        )
    )
    return post(conn, spec, now_ns=now_ns)


def client_exists(conn: sa.Connection, client_id: str) -> bool:
    """Whether ``client_id`` is a client of the payments API."""
    query = sa.select(api_clients.c.id).where(api_clients.c.id == client_id)
    return conn.execute(query).first() is not None


def _require_client(conn: sa.Connection, client_id: str) -> None:
    if not client_exists(conn, client_id):
        raise UnknownAccountError(f"unknown API client: {client_id!r}")


def _locked_mandate(conn: sa.Connection, client_id: str, player_id: str) -> sa.Row | None:
    query = sa.select(charge_mandates).where(
        charge_mandates.c.client_id == client_id, charge_mandates.c.player_id == player_id
    )
    return conn.execute(query.with_for_update()).first()


def _mandate_update(client_id: str, player_id: str) -> sa.Update:
    return charge_mandates.update().where(
        charge_mandates.c.client_id == client_id, charge_mandates.c.player_id == player_id
    )


# --- payouts to any Hedera account -----------------------------------------------------------
@dataclass(frozen=True)
class ClientPayout:
    """A client's payout with what settlement knows of it."""

    payout: Payout
    memo: str
    created_at_ns: int
    transaction_id: str | None  # the Hedera transaction that paid it (posted payouts)
    consensus_ns: int | None  # its consensus time, when the receipt or record carried one


def client_payout_id(client_id: str, payout_id: str) -> str:
    """The ledger payout id of a client's ``payout_id``: ``api:<client>:<payout id>``.

    When that is longer than a payout id may be (a 48-char client id with a 64-char request id),
    the request id is replaced by ``@`` and its SHA-256 prefix (no request id contains ``@``)."""
    return _ledger_payout_id("api", client_id, payout_id, what="payout_id")


def client_withdrawal_id(client_id: str, withdrawal_id: str) -> str:
    """The ledger payout id of a client's withdrawal: ``wd:<client>:<withdrawal id>`` (a SHA-256
    stand-in for a long one, as for ``client_payout_id``)."""
    return _ledger_payout_id("wd", client_id, withdrawal_id, what="withdrawal_id")


def _ledger_payout_id(namespace: str, client_id: str, request_id: str, *, what: str) -> str:
    client_account(client_id)  # validates the client id
    check_identifier(request_id, what=what, max_length=64)
    ledger_id = f"{namespace}:{client_id}:{request_id}"
    if len(ledger_id) > DERIVED_ID_MAX:
        digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
        ledger_id = f"{namespace}:{client_id}:@{digest}"
    return ledger_id


def request_client_payout(
    conn: sa.Connection,
    client_id: str,
    payout_id: str,
    destination: str,
    amount_tinybar: int,
    *,
    memo: str,
    now_ns: int,
) -> tuple[ClientPayout, bool]:
    """Book a payout from the client's balance to ``destination``; ``(payout, created)``.

    Idempotent on ``payout_id``: a replay with the same content returns the stored payout
    (``created`` False); other content under the same id is an ``IdempotencyConflictError``;
    a short balance is an ``InsufficientFundsError`` (nothing booked)."""
    ledger_id = client_payout_id(client_id, payout_id)
    return _request(conn, client_id, ledger_id, destination, amount_tinybar, memo, now_ns)


def request_client_withdrawal(
    conn: sa.Connection,
    client_id: str,
    withdrawal_id: str,
    destination: str,
    amount_tinybar: int,
    *,
    now_ns: int,
) -> tuple[ClientPayout, bool]:
    """Book a withdrawal of the client's balance to its Hedera account ``destination``:
    a payout (``request_client_payout``) under ``client_withdrawal_id``, memo ``withdrawal``."""
    ledger_id = client_withdrawal_id(client_id, withdrawal_id)
    return _request(conn, client_id, ledger_id, destination, amount_tinybar, "withdrawal", now_ns)


def _request(
    conn: sa.Connection,
    client_id: str,
    ledger_id: str,
    destination: str,
    amount_tinybar: int,
    memo: str,
    now_ns: int,
) -> tuple[ClientPayout, bool]:
    _require_client(conn, client_id)
    created = find_payout(conn, ledger_id) is None
    request_payout(
        conn, ledger_id, client_account(client_id), destination, amount_tinybar,
        now_ns=now_ns, memo=memo,
    )
    found = _read(conn, client_id, ledger_id)
    assert found is not None  # just booked (or found) in this transaction
    return found, created


def client_payout(conn: sa.Connection, client_id: str, payout_id: str) -> ClientPayout | None:
    """The client's payout ``payout_id`` and its settlement, or ``None`` if it has none."""
    return _read(conn, client_id, client_payout_id(client_id, payout_id))


def client_withdrawal(
    conn: sa.Connection, client_id: str, withdrawal_id: str
) -> ClientPayout | None:
    """The client's withdrawal ``withdrawal_id`` and its settlement, or ``None``."""
    return _read(conn, client_id, client_withdrawal_id(client_id, withdrawal_id))


def _read(conn: sa.Connection, client_id: str, ledger_id: str) -> ClientPayout | None:
    payout = find_payout(conn, ledger_id)
    if payout is None or payout.from_account != client_account(client_id):
        return None
    pending = get_transfer(conn, f"payout:{ledger_id}")
    assert pending is not None  # written with the payout row
    tx_id, consensus_ns = settlement_of(conn, payout)
    return ClientPayout(payout, pending.spec.memo, pending.created_at_ns, tx_id, consensus_ns)


_MIRROR_TX_ID = re.compile(r"(\d+\.\d+\.\d+)-(\d+)-(\d+)")


def hedera_transaction_ids(
    conn: sa.Connection, client_id: str, transfers: Iterable[Transfer]
) -> dict[str, str]:
    """The Hedera transaction behind each of these transfers of the client's account that has
    one (``payer@seconds.nanos``), by transfer id: a deposit's (``deposit:<mirror id>``), and a
    settled payout's or withdrawal's on its pending and post transfers."""
    found: dict[str, str] = {}
    account = client_account(client_id)
    for transfer in transfers:
        tid = transfer.id
        if tid.startswith("deposit:"):
            match = _MIRROR_TX_ID.fullmatch(tid.removeprefix("deposit:"))
            if match is not None:
                found[tid] = f"{match[1]}@{match[2]}.{match[3]}"
        elif tid.startswith("payout:") and not tid.endswith(":void"):
            payout = find_payout(conn, tid.removeprefix("payout:").removesuffix(":post"))
            if payout is not None and payout.from_account == account:
                tx_id, _ = settlement_of(conn, payout)
                if tx_id is not None:
                    found[tid] = tx_id
    return found


def refunded_tinybar(payout: Payout) -> int:
    """What went back to the payer: all of it for a voided payout, else nothing."""
    return payout.amount_tinybar if payout.state is PayoutState.VOIDED else 0

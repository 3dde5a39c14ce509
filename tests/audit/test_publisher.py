"""The audit publisher: one message per block, retries without duplicates, restarts resume."""

from __future__ import annotations

import threading
import time

import pytest

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.audit.records import BlockMessage
from tests.audit.fakes import MemoryAuditNetwork


class Clock:
    """A clock the test moves by hand [epoch ns]."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


def _fill(journal: AuditJournal, first: int, count: int) -> None:
    for n in range(first, first + count):
        journal.append("verdict", f"run-{n}", {"kind": "verdict", "contribution": f"run-{n}",
                                               "sha256": f"{n:064x}", "reward_tinybar": n,
                                               "penalty_tinybar": 0, "payout": None})


def _publisher(journal: AuditJournal, network: MemoryAuditNetwork, **options: object
               ) -> AuditPublisher:
    return AuditPublisher(journal, network, **{"max_entries": 8, "interval_s": 5.0,
                                               "poll_s": 0.01, **options})


def test_each_block_is_one_message_carrying_its_root(journal: AuditJournal,
                                                     network: MemoryAuditNetwork) -> None:
    # GIVEN 20 journaled verdicts and blocks of at most 8
    _fill(journal, 0, 20)
    # WHEN everything is published
    publisher = _publisher(journal, network)
    assert publisher.drain(timeout_s=10)
    # THEN 3 blocks, 3 messages on the one topic, each the block's number, root and count,
    # chained to the previous root
    topic = journal.topic()
    assert topic is not None and network.created == 1
    messages = [BlockMessage.decode(m) for m in network.all_messages()]
    blocks = [journal.block(seq) for seq in (1, 2, 3)]
    assert [(m.block, m.entries) for m in messages] == [(1, 8), (2, 8), (3, 4)]
    for message, block in zip(messages, blocks, strict=True):
        assert block is not None and block.state == "published"
        assert (message.root, message.prev) == (block.root, block.prev_root)
        assert network.message(topic, block.topic_sequence).message == block.message
    assert network.submits == 3 and journal.stats()["published_blocks"] == 3


def test_a_partial_block_waits_for_the_interval(journal: AuditJournal,
                                                network: MemoryAuditNetwork) -> None:
    clock = Clock()
    journal.clock = clock
    publisher = _publisher(journal, network, interval_s=2.0, clock_ns=clock)
    _fill(journal, 0, 3)
    publisher.run_once()
    assert journal.stats()["blocks"] == 0  # 3 < 8, and the oldest waited 0 s
    clock.advance(2.5)
    publisher.run_once()
    assert journal.stats()["published_blocks"] == 1 and len(network.all_messages()) == 1


def test_failures_retry_and_never_publish_a_block_twice(journal: AuditJournal,
                                                        network: MemoryAuditNetwork) -> None:
    # GIVEN a network that is down while 10 verdicts are journaled
    _fill(journal, 0, 10)
    network.down = True
    publisher = _publisher(journal, network)
    with pytest.raises(ConnectionError):
        publisher.run_once(force=True)
    assert journal.stats()["blocks"] == 2  # sealed all the same, waiting to be published
    # WHEN it is back but loses the answer to the first message (posted all the same)
    network.down, network.lose_answers = False, 1
    with pytest.raises(ConnectionError):
        publisher.run_once()
    # AND the process restarts: a new journal object and publisher on the same database
    restarted = _publisher(AuditJournal(journal.engine), network)
    assert restarted.drain(timeout_s=10)
    # THEN each block is on the topic exactly once: the stored message was found executed
    messages = [BlockMessage.decode(m).block for m in network.all_messages()]
    assert messages == [1, 2] and network.created == 1
    assert (restarted.stats.published, restarted.stats.submissions) == (2, 1)  # 1 not resent


def test_a_restart_resumes_without_resending_published_blocks(
        journal: AuditJournal, network: MemoryAuditNetwork) -> None:
    # GIVEN two published blocks, then a restart
    _fill(journal, 0, 16)
    assert _publisher(journal, network).drain(timeout_s=10)
    sent = network.submits
    # WHEN more verdicts come and the new process publishes
    restarted = _publisher(AuditJournal(journal.engine), network)
    _fill(restarted.journal, 16, 5)
    assert restarted.drain(timeout_s=10)
    # THEN only the new block was sent, on the same topic, chained to the old ones
    assert network.submits == sent + 1 and network.created == 1
    assert [BlockMessage.decode(m).block for m in network.all_messages()] == [1, 2, 3]
    third = journal.block(3)
    second = journal.block(2)
    assert third is not None and second is not None and third.prev_root == second.root


def test_a_message_signed_but_never_sent_is_signed_anew_after_its_window(
        journal: AuditJournal, network: MemoryAuditNetwork) -> None:
    # GIVEN a block whose message was signed and stored, and the process died before sending
    clock = Clock()
    _fill(journal, 0, 3)
    block = journal.seal(8)
    assert block is not None
    topic = journal.claim_topic(network.create_audit_topic())
    stale = journal.store_prepared(block.seq, topic,
                                   network.prepare_audit_message(topic, block.message))
    # WHEN the publisher comes back after the window closed
    clock.advance(300)
    publisher = _publisher(journal, network, clock_ns=clock)
    publisher.run_once()  # finds it expired (no receipt): dropped
    publisher.run_once()  # signs the same message anew and sends it
    # THEN it is published once, under a new transaction id, with the same content
    published = journal.block(block.seq)
    assert published is not None and published.state == "published"
    assert published.transaction_id != stale.transaction_id
    assert network.all_messages() == [block.message]


def test_appending_never_waits_for_a_hung_network(journal: AuditJournal,
                                                  network: MemoryAuditNetwork) -> None:
    # GIVEN the publisher's thread stuck in a send that does not return
    network.gate = threading.Event()
    _fill(journal, 0, 8)
    publisher = _publisher(journal, network).start()
    try:
        deadline = time.monotonic() + 5
        while network.submits == 0 and journal.stats()["blocks"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # WHEN verdicts and settled transactions keep coming
        started = time.perf_counter()
        _fill(journal, 8, 50)
        journal.collect_settled()
        elapsed = time.perf_counter() - started
        # THEN journaling them takes no longer than the inserts (nothing waits on the network)
        assert elapsed < 2.0
        assert journal.stats()["entries"] == 58
    finally:
        network.gate.set()
        publisher.stop()
    # AND once the network answers, everything is published, one message per block
    assert _publisher(journal, network).drain(timeout_s=10)
    assert len(network.all_messages()) == journal.stats()["published_blocks"]
    assert journal.stats()["sealed_entries"] == 58


def test_the_thread_retries_with_backoff_until_the_network_is_back(
        journal: AuditJournal, network: MemoryAuditNetwork) -> None:
    network.down = True
    _fill(journal, 0, 8)  # one full block: sealed at once
    publisher = _publisher(journal, network, retry_max_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while publisher.stats.failures < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        network.down = False
        while journal.stats()["published_blocks"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        publisher.stop()
    assert len(network.all_messages()) == 1


def test_two_publishers_share_one_topic_and_publish_each_block_once(
        journal: AuditJournal, network: MemoryAuditNetwork) -> None:
    # GIVEN two processes (a game server and a judge) publishing from one database at once
    first = _publisher(journal, network).start()
    second = _publisher(AuditJournal(journal.engine), network).start()
    try:
        _fill(journal, 0, 40)
        _fill(second.journal, 40, 40)
        deadline = time.monotonic() + 20
        while journal.stats()["published_blocks"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        first.stop()
        second.stop()
    # THEN one topic holds every block once (a second topic, if both created one, stays empty)
    topic = journal.topic()
    assert topic is not None and network.created <= 2
    assert [t for t, messages in network.topics.items() if messages] == [topic]
    published = sorted((BlockMessage.decode(m).block, BlockMessage.decode(m).entries)
                       for m in network.all_messages())
    assert published == [(n, 8) for n in range(1, 11)]  # full blocks: sealed one at a time

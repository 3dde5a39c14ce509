"""The audit trail: every verdict and every settled Hedera transaction, provable on one HCS topic.

    records.py    the canonical record JSON of a verdict / a settled transaction, the block message
    merkle.py     RFC 6962 Merkle tree hashes (0x00 leaf / 0x01 node prefixes), inclusion paths
    schema.py     the journal's tables (in the ledger database; migration ``0005``)
    journal.py    ``AuditJournal``: entries appended where they happen, blocks, cursors, the topic
    proofs.py     ``InclusionProof``: an entry's path to its block's root
    network.py    ``AuditNetwork``: what publishing needs from Hedera (the SDK transport has it)
    topic.py      the deployment's single audit topic (created once, kept in the database)
    publisher.py  ``AuditPublisher``: its own thread seals blocks and publishes one message each
    mirror.py     reading the topic's messages back from a mirror node (REST)
    verify.py     checking one verdict / payout against the topic; ``cli.py``: ``audit verify``

See docs/audit.md. Nothing is imported here: ``ledger.schema`` loads ``audit.schema``.
"""

"""The deployment's one audit topic: created once, kept in the ledger database, used by all.

Every process (game server, judge, a second judge by mistake) asks ``deployment_topic``: the
topic stored in the database wins. With none stored, the configured one
(``CROWDLEARNING_HEDERA_AUDIT_TOPIC_ID``) is stored, or else a new topic is created and stored;
two processes racing may both create a topic, but only the first one stored is ever used (the
other is logged and stays empty). A configured topic that differs from the stored one is refused:
blocks would go to two places.
"""

from __future__ import annotations

import logging

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.network import AuditNetwork
from crowdlearning.errors import ConfigurationError

__all__ = ["deployment_topic"]

log = logging.getLogger(__name__)


def deployment_topic(journal: AuditJournal, network: AuditNetwork, configured: str = "") -> str:
    """The audit topic of this deployment (see the module docstring)."""
    stored = journal.topic()
    if stored is None:
        candidate = configured or network.create_audit_topic()
        stored = journal.claim_topic(candidate)
        if stored == candidate:
            log.warning("audit topic %s is this deployment's (kept in the ledger database)",
                        stored)
        elif not configured:
            log.warning("created audit topic %s, but another process stored %s first: %s "
                        "stays unused", candidate, stored, candidate)
    if configured and configured != stored:
        raise ConfigurationError(
            f"CROWDLEARNING_HEDERA_AUDIT_TOPIC_ID={configured} but this deployment's audit "
            f"topic (in the ledger database) is {stored}: unset the setting or make it {stored}")
    return stored

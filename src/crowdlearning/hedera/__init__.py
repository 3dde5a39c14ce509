"""The contract with a Hedera network, below everything that moves money or publishes on it.

``transport.py`` holds the types and the ``HederaTransport`` protocol that the ledger's
settlement store, the payments service and the audit trail all speak. It depends on nothing
else in the project, so ``ledger/`` (which stores prepared transactions) does not import
``payments/`` (which drives the SDK), and both build on it.
"""

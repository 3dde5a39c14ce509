"""Settlement on Hedera: the transport contract, the SDK transport, the local network."""

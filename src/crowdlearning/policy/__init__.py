"""The driving policy: network, batched inference, checkpoints (weights + JSON, never pickles)."""

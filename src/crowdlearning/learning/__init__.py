"""Contributions, labels (DAgger and HG-DAgger), the aggregated dataset, training, the registry."""

"""The simulator: a synthetic clinic that produces ``SessionCompleted`` events for demos and load.

The trajectories themselves come from the pure generator in :mod:`shared.history.synthetic`; this service
only paces them onto Kafka (or writes them as offline history).
"""

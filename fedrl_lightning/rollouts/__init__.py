"""Rollouts.

Episodes played with the live policy, served as an IterableDataset, and the returns and
advantages computed from them.
"""

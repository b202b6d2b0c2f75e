"""Policies.

The networks, the numpy actors that roll them out, and the running statistics that normalise
their inputs and rewards (:mod:`fedrl_lightning.policy.normalization`).
"""

"""Rollouts.

Episodes played with the live policy, served as an IterableDataset; the return estimators
computed from them (:mod:`fedrl_lightning.rollouts.returns`); and the evaluation of a policy
on seeded episodes of chosen agents (:mod:`fedrl_lightning.rollouts.evaluation`); and one
agent's replay buffer for the off-policy learners (:mod:`fedrl_lightning.rollouts.replay`).
"""

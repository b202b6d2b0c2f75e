"""The old home of the learners' base: ``PolicyModule`` is ``learners.Learner``.

Kept so that existing imports keep working.
"""

from fedrl_lightning.learners.base import ENV_HPARAMS, Learner, env_hparams

PolicyModule = Learner

__all__ = ["ENV_HPARAMS", "PolicyModule", "env_hparams"]

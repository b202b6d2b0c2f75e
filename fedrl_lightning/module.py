"""The old home of REINFORCE: ``ReinforceModule`` is :class:`~fedrl_lightning.learners.Reinforce`.

Kept so that existing imports, configs and checkpoints keep working.
"""

from fedrl_lightning.learners.reinforce import Reinforce, reinforce_loss

ReinforceModule = Reinforce

__all__ = ["ReinforceModule", "reinforce_loss"]

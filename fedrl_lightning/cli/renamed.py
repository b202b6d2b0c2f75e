"""Options that moved: one line naming what replaces an old option a command or config gives."""

from __future__ import annotations

import re

from fedrl_lightning.errors import ConfigError

__all__ = ["RENAMED", "renamed_option"]

RENAMED = {
    "trainer.personalization": "--trainer.server Shared --trainer.server.agent [PATTERN, ...] "
    "(and --trainer.server.task [...])",
    "trainer.clusters": "--trainer.server Clustered --trainer.server.k K",
    "trainer.cluster_eval_episodes": "--trainer.server Clustered --trainer.server.eval_episodes N",
    "trainer.update_mode": "--trainer.server Gradient (weights: leave trainer.server out)",
    "trainer.server_optimizer": "--trainer.server Gradient --trainer.server.optimizer adam "
    "--trainer.server.lr LR (or sgd with --trainer.server.momentum)",
    "trainer.distillation": "--trainer.server Distilled (its options: "
    "--trainer.server.kl_coef, .probe_states, .every_n_rounds, .student_steps, .student_lr, "
    ".consensus)",
    "trainer.sharing": "--trainer.components+ TrajectorySharing (its options: "
    "--trainer.components.share_fraction, .buffer_episodes, .replay_ratio, .rho_max)",
    "trainer.coverage": "--trainer.components+ Coverage",
}
"""Each option that moved into ``trainer.server`` or ``trainer.components``, and its replacement."""


def renamed_option(message: str) -> ConfigError | None:
    """The one-line error for a parse error ``message`` that an old option caused, if one did."""
    for old, new in RENAMED.items():
        if re.search(rf"{re.escape(old)}(?![\w])", message):
            return ConfigError(f"{old}: now {new}")
    return None

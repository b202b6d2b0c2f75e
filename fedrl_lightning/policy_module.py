"""The base of modules whose policy acts in an environment: built for it, used after training."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch.distributions import Distribution
from typing_extensions import Self, override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.policy import MLPPolicy

if TYPE_CHECKING:
    from fedrl_lightning.population import AgentPopulation

__all__ = ["ENV_HPARAMS", "PolicyModule", "env_hparams"]

ENV_HPARAMS = ("observation_dim", "num_actions", "continuous", "action_low", "action_high")
"""The hyperparameters that size a policy, which must match the agents' environment."""


def env_hparams(population: AgentPopulation) -> dict[str, Any]:
    """The values of :data:`ENV_HPARAMS` that fit ``population``'s environment."""
    return {name: getattr(population, name) for name in ENV_HPARAMS}


class PolicyModule(L.LightningModule):
    """A LightningModule whose ``policy`` acts in the agents' gymnasium environment.

    Subclasses build ``self.policy`` and save :data:`ENV_HPARAMS` among their hyperparameters
    (with ``save_hyperparameters``). This base gives every such learner the same ways to be
    built for a population, checked against one, loaded and deployed. Calling the module on
    observations returns the policy's action distribution.
    """

    policy: MLPPolicy

    @classmethod
    def for_population(cls, population: AgentPopulation, **hparams: Any) -> Self:
        """Build the module with the observation and action sizes of ``population``'s env.

        Args:
            population: The agents whose environment the policy will act in.
            **hparams: The module's other hyperparameters, such as ``hidden_dim`` or ``lr``.

        Returns:
            The module, sized for the population.

        Raises:
            ConfigError: If ``hparams`` gives a size that comes from the population.
        """
        given = [name for name in ENV_HPARAMS if name in hparams]
        if given:
            raise ConfigError(
                f"{cls.__name__}.for_population: {', '.join(given)} come from the population's "
                "environment; leave them out"
            )
        return cls(**env_hparams(population), **hparams)

    @override
    @_restricted_classmethod  # as Lightning's: calling it on an instance raises TypeError
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path | IO,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        """Load a round or agent checkpoint as Lightning does, and return it in eval mode.

        Args:
            checkpoint_path: The checkpoint, such as ``lightning_logs/version_0/checkpoints/
                last.ckpt``.
            map_location: Where to put the tensors, as for ``torch.load``.
            hparams_file: A YAML or CSV file of hyperparameters that replace the saved ones.
            strict: Whether the checkpoint's keys must match the module's exactly.
            weights_only: Load only tensors and plain containers (``None``: torch's default).
            **kwargs: Hyperparameters that override the saved ones.

        Returns:
            The module, in eval mode, ready to :meth:`act`.
        """
        module = super().load_from_checkpoint(
            checkpoint_path, map_location, hparams_file, strict, weights_only, **kwargs
        )
        return module.eval()

    def check_fits(self, population: AgentPopulation) -> None:
        """Refuse a population whose environment the policy's sizes do not fit.

        Args:
            population: The agents the module is about to train on.

        Raises:
            ConfigError: One line that lists every size that differs and says how to fix it.
        """
        wanted = env_hparams(population)
        names = ["observation_dim", "continuous", "num_actions"]
        if wanted["continuous"] and self.hparams.get("continuous"):
            names += ["action_low", "action_high"]
        differences = [
            f"model.{name} is {self.hparams.get(name)}, the environment's is {wanted[name]}"
            for name in names
            if not _same(self.hparams.get(name), wanted[name])
        ]
        if differences:
            raise ConfigError(
                f"the model does not fit data.env_id {population.env_id}: "
                f"{'; '.join(differences)}; build it with "
                f"{type(self).__name__}.for_population(population, ...)"
            )

    @override
    def forward(self, observations: torch.Tensor) -> Distribution:
        return self.policy(observations)

    def act(self, observations: np.ndarray, deterministic: bool = False) -> int | np.ndarray:
        """Actions for the environment, for one observation or a batch of them.

        The policy runs in eval mode and without gradients; the module's modes are restored
        afterwards. Sampling uses torch's random generator (seed it with ``torch.manual_seed``).

        Args:
            observations: One observation, shape ``[observation_dim]``, or a batch of them,
                ``[batch, observation_dim]``, as a vector environment returns.
            deterministic: Take the most likely action (discrete) or the mean (continuous)
                instead of sampling.

        Returns:
            For a discrete action space, an ``int`` for one observation, or an ``int64``
            array of shape ``[batch]``. For a continuous one, a ``float32`` array of shape
            ``[action_dim]`` or ``[batch, action_dim]``, clipped to the action bounds.

        Raises:
            ValueError: If ``observations`` has the wrong shape.
        """
        observations = np.asarray(observations, dtype=np.float32)
        observation_dim = self.hparams.get("observation_dim")
        if observations.ndim not in (1, 2) or observations.shape[-1] != observation_dim:
            raise ValueError(
                f"observations must have shape [{observation_dim}] or [batch, {observation_dim}], "
                f"got {list(observations.shape)}"
            )
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                actions = self.policy.act(
                    torch.from_numpy(observations).to(self.device), deterministic
                )
        finally:
            for module, training in modes:
                module.training = training
        actions = actions.cpu().numpy()
        if actions.dtype.kind in "iu":
            return int(actions) if actions.ndim == 0 else actions.astype(np.int64)
        return actions.astype(np.float32)


def _same(have: Any, wanted: Any) -> bool:
    """Whether a hyperparameter has the value wanted; bounds compare as the policy's float32."""
    if isinstance(wanted, list):
        return bool(np.array_equal(np.asarray(have, np.float32), np.asarray(wanted, np.float32)))
    return have == wanted

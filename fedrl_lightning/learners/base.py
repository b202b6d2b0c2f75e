"""The base of every learner: a policy built for the agents' environment, trained and deployed."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self, cast

import gymnasium as gym
import numpy as np
import torch
from lightning.pytorch.utilities import AttributeDict
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch.distributions import Distribution
from torch.utils.data import IterableDataset
from torchmetrics import MeanMetric
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration import Curiosity, CuriosityOptions
from fedrl_lightning.learners.federated_updates import FederatedUpdates
from fedrl_lightning.learners.fit_record import FitRecord
from fedrl_lightning.policy.networks import CategoricalMLPPolicy, GaussianMLPPolicy, MLPPolicy
from fedrl_lightning.rollouts.dataset import EpisodeBatch, EpisodeDataset
from fedrl_lightning.rollouts.returns import truncated_importance_weights
from fedrl_lightning.seeding import Stream

if TYPE_CHECKING:
    from fedrl_lightning.federation.components.base import RoundComponent
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["ENV_HPARAMS", "Learner", "env_hparams"]

ENV_HPARAMS = ("observation_dim", "num_actions", "continuous", "action_low", "action_high")
"""The hyperparameters that size a policy, which must match the agents' environment."""
_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})
"""Types whose values ``nn.Module.__setattr__`` never registers as parameters or submodules."""


def env_hparams(population: AgentPopulation) -> dict[str, Any]:
    """The values of :data:`ENV_HPARAMS` that fit ``population``'s environment."""
    return {name: getattr(population, name) for name in ENV_HPARAMS}


class Learner(FederatedUpdates, FitRecord):
    """A LightningModule, with manual optimization, whose ``policy`` acts in the agents' env.

    Subclasses call ``super().__init__()``, then ``save_hyperparameters()`` with
    :data:`ENV_HPARAMS`, ``hidden_dim``, ``lr``, ``gamma`` and ``log_std_init`` among their
    arguments, then build ``self.policy`` with :meth:`_make_policy` and any other network
    (a critic) after it. Everything a learner trains is a submodule, so it is in the
    ``state_dict`` that strategies aggregate. This base gives every learner the same ways to be
    built for a population, checked against one, loaded and deployed, and its curiosity and
    replayed episodes' importance weights. A ``training_step`` adds the federation's terms to
    its loss with :meth:`_with_federated_terms` and updates the weights through
    :meth:`_optimize` (:class:`~fedrl_lightning.learners.federated_updates.FederatedUpdates`),
    and records what the fit did with :meth:`_record_batch` and :meth:`_record`
    (:class:`~fedrl_lightning.learners.fit_record.FitRecord`). Calling the module on
    observations returns the policy's action distribution.
    """

    policy: MLPPolicy
    curiosity: Curiosity | None

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.lr_scale = 1.0
        self.rho_max = 1.0  # truncation of replayed episodes' importance weights
        # Features act() appends to every observation: a task-conditioned agent's task id.
        self.observation_suffix: np.ndarray | None = None
        self.curiosity = None

    @override
    def __setattr__(self, name: str, value: Any) -> None:
        """Set an attribute; a plain value over a plain attribute skips ``nn.Module``'s checks.

        Lightning sets ``_current_fx_name`` on the module around every hook it calls, dozens
        of times a batch, and a fit counts its steps in plain attributes: through
        ``nn.Module.__setattr__`` each set costs about ten times a plain one. A name already in
        the instance's ``__dict__`` is no parameter, buffer or submodule, and a ``str``,
        number, ``bool`` or ``None`` registers as none, so ``nn.Module`` would end in the same
        ``object.__setattr__``.
        """
        if type(value) in _PLAIN_VALUES and name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    @override
    def hparams(self) -> AttributeDict:
        """The hyperparameters ``save_hyperparameters`` saved, read as attributes (``hparams.lr``).

        Lightning types them as any mutable mapping; ``save_hyperparameters`` always stores an
        :class:`~lightning.pytorch.utilities.AttributeDict`, so this says so.
        """
        return cast(AttributeDict, super().hparams)

    def _check_hparams(self) -> None:
        """Refuse the hyperparameters every learner has, once they are saved.

        ``curiosity`` is kept as plain data (a dict of the fields set), so that checkpoints
        load with ``weights_only=True`` and a saved dict builds the same learner again.
        """
        hp = self.hparams
        if hp.get("curiosity") is not None:
            hp.curiosity = CuriosityOptions.of(hp.curiosity).plain()
            cast(AttributeDict, self._hparams_initial).curiosity = hp.curiosity
        if hp.hidden_dim <= 0:
            raise ConfigError(f"model.hidden_dim must be positive, got {hp.hidden_dim}")
        if hp.lr < 0:
            raise ConfigError(f"model.lr must not be negative, got {hp.lr}")
        if not 0 < hp.gamma <= 1:
            raise ConfigError(f"model.gamma must be in (0, 1], got {hp.gamma}")
        if hp.get("num_layers", 1) < 1:
            raise ConfigError(f"model.num_layers must be at least 1, got {hp.num_layers}")

    def _make_policy(self) -> MLPPolicy:
        """The policy that :data:`ENV_HPARAMS` and the layout hyperparameters describe.

        ``hidden_dim`` (and ``log_std_init`` for a continuous policy) are required;
        ``num_layers`` and ``normalize_observations`` are optional, for learners that lack them.
        """
        hp = self.hparams
        layout = {
            "num_layers": hp.get("num_layers", 1),
            "normalize_observations": hp.get("normalize_observations", False),
        }
        if not hp.continuous:
            return CategoricalMLPPolicy(hp.observation_dim, hp.num_actions, hp.hidden_dim, **layout)
        low = hp.action_low if hp.action_low is not None else [-1.0] * hp.num_actions
        high = hp.action_high if hp.action_high is not None else [1.0] * hp.num_actions
        if not len(low) == len(high) == hp.num_actions:
            raise ConfigError(
                f"model.action_low and model.action_high need {hp.num_actions} values each"
            )
        return GaussianMLPPolicy(
            hp.observation_dim, hp.num_actions, hp.hidden_dim, low, high, hp.log_std_init, **layout
        )

    def _make_curiosity(self) -> None:
        """Build ``self.curiosity`` from the ``curiosity`` hyperparameter; ``None`` keeps it off.

        Call it after every other network, so a learner without curiosity draws the same
        initial weights, and has the same ``state_dict``, as before curiosity existed.
        """
        hp = self.hparams
        if hp.get("curiosity") is None:
            return
        options = CuriosityOptions.of(hp.curiosity)
        self.curiosity = options.build(hp.observation_dim, hp.num_actions, hp.continuous)
        self.intrinsic_reward = MeanMetric(nan_strategy="disable")

    def most_episodes_per_fit(self, episodes_per_round: int) -> int:
        """The most whole episodes one of its local fits finishes: ``episodes_per_round``.

        Trajectory sharing refuses an agent that uploads more.
        """
        return episodes_per_round

    def rollout_dataset(
        self, env: gym.Env | gym.vector.VectorEnv, fit: AgentFit, **options: Any
    ) -> IterableDataset:
        """The dataset of one local fit: what the agent collects with the live policy.

        The episodic learners get ``trainer.episodes_per_round`` whole episodes, in batches
        of ``data.episodes_per_update`` (:class:`EpisodeDataset`).

        Args:
            env: The agent's environment, or a vector env of copies of it.
            fit: The local fit: its agent, round, seeds and population.
            **options: :class:`EpisodeDataset` arguments the round components set
                (shared episodes to replay, episodes to keep for sharing).
        """
        population = fit.population
        return EpisodeDataset(
            env=env,
            policy=self.policy,
            num_episodes=fit.task.num_episodes,
            episodes_per_update=population.episodes_per_update,
            gamma=self.hparams.gamma,
            env_seed=fit.seed(Stream.ENV),
            action_seed=fit.seed(Stream.ACTIONS),
            random_actions=population.byzantine.acts_randomly(fit.task.agent_id),
            **options,
        )

    def round_components(self) -> list[RoundComponent]:
        """Round components this learner needs in every run (the off-policy agents' memory)."""
        return []

    def seed_run(self, run_seed: int) -> None:
        """Rebuild what derives from the run seed alone: RND's target network, if any."""
        if self.curiosity is not None:
            self.curiosity.seed_run(run_seed)

    def intrinsic_rewards(self, batch: EpisodeBatch) -> torch.Tensor | None:
        """The batch's normalised intrinsic rewards, ``[episodes, steps]``; ``None`` if none.

        Without curiosity there are none. Their raw values are recorded in the
        ``intrinsic_reward`` metric.
        """
        if self.curiosity is None:
            return None
        rewards, raw = self.curiosity.intrinsic_rewards(batch)
        self._record("intrinsic_reward", raw)
        return rewards

    @override
    def transfer_batch_to_device(
        self, batch: EpisodeBatch, device: torch.device, dataloader_idx: int
    ) -> EpisodeBatch:
        """The batch with every tensor on ``device`` (``replayed`` may be ``None``).

        Returns:
            A new :class:`EpisodeBatch`.
        """
        return EpisodeBatch._make(t.to(device) if t is not None else None for t in batch)

    def replay_weights(self, log_probs: torch.Tensor, batch: EpisodeBatch) -> torch.Tensor:
        """``[episodes, steps]`` importance weights: 1 on own episodes, truncated on replayed.

        A replayed episode's step gets ``min(rho_max, pi(a_t|s_t) / mu(a_t|s_t))``, ``mu``
        being its behaviour policy's log-probability (``batch.log_probs``); see
        :func:`~fedrl_lightning.rollouts.returns.truncated_importance_weights`.
        """
        weights = truncated_importance_weights(log_probs, batch.log_probs, self.rho_max)
        replayed = batch.replayed_episodes().unsqueeze(1)
        return torch.where(replayed & batch.mask, weights, torch.ones_like(weights))

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over every parameter, at ``lr`` times the round's learning-rate scale.

        Returns:
            The optimizer (fused on CPU and CUDA).
        """
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr * self.lr_scale, fused=fused)

    def sized_for(self, sizes: dict[str, Any], seed: int) -> Learner:
        """This learner, with other observation and action sizes: another task's.

        Args:
            sizes: The values of :data:`ENV_HPARAMS` to have.
            seed: Seeds the new learner's initial weights (torch's global generator is left
                as it was).

        Returns:
            This learner itself when it has those sizes, else a new one with its other
            hyperparameters.
        """
        if all(_same(self.hparams.get(name), value) for name, value in sizes.items()):
            return self
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return type(self)(**{**self.hparams, **sizes})

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
        """The policy's action distribution, before any clipping to the action bounds.

        Returns:
            A ``Categorical`` for discrete actions, or ``Independent(Normal(mean, std), 1)``.
        """
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
        suffix = getattr(self, "observation_suffix", None)
        if suffix is not None:  # a task-conditioned policy: the agent's one-hot task id
            tail = np.broadcast_to(suffix, (*observations.shape[:-1], len(suffix)))
            observations = np.concatenate([observations, tail], axis=-1)
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
                chosen = self.policy.act(
                    torch.from_numpy(observations).to(self.device), deterministic
                )
        finally:
            for module, training in modes:
                module.training = training
        actions = chosen.cpu().numpy()
        if actions.dtype.kind in "iu":
            return int(actions) if actions.ndim == 0 else actions.astype(np.int64)
        return actions.astype(np.float32)


def _same(have: Any, wanted: Any) -> bool:
    """Whether a hyperparameter has the value wanted; bounds compare as the policy's float32."""
    if isinstance(wanted, list):
        return bool(np.array_equal(np.asarray(have, np.float32), np.asarray(wanted, np.float32)))
    return have == wanted

"""The base of every learner: a policy built for the agents' environment, trained and deployed."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch.distributions import Distribution
from torchmetrics import MeanMetric
from typing_extensions import Self, override

from fedrl_lightning.data import EpisodeBatch
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.exploration import Curiosity, make_curiosity
from fedrl_lightning.exploration.coverage import CoverageGrid
from fedrl_lightning.learners.distillation_term import DistillationTarget
from fedrl_lightning.learners.meta_step import MetaStep, MetaUpdates
from fedrl_lightning.learners.off_policy import truncated_importance_weights
from fedrl_lightning.policy import CategoricalMLPPolicy, GaussianMLPPolicy, MLPPolicy
from fedrl_lightning.statistics_module import RunningStatistics

if TYPE_CHECKING:
    from fedrl_lightning.population import AgentPopulation

__all__ = ["ENV_HPARAMS", "Learner", "env_hparams"]

ENV_HPARAMS = ("observation_dim", "num_actions", "continuous", "action_low", "action_high")
"""The hyperparameters that size a policy, which must match the agents' environment."""


def env_hparams(population: AgentPopulation) -> dict[str, Any]:
    """The values of :data:`ENV_HPARAMS` that fit ``population``'s environment."""
    return {name: getattr(population, name) for name in ENV_HPARAMS}


class Learner(L.LightningModule):
    """A LightningModule, with manual optimization, whose ``policy`` acts in the agents' env.

    Subclasses call ``super().__init__()``, then ``save_hyperparameters()`` with
    :data:`ENV_HPARAMS`, ``hidden_dim``, ``lr``, ``gamma`` and ``log_std_init`` among their
    arguments, then build ``self.policy`` with :meth:`_make_policy` and any other network
    (a critic) after it. Everything a learner trains is a submodule, so it is in the
    ``state_dict`` that strategies aggregate. This base gives every learner the same ways to be
    built for a population, checked against one, loaded and deployed; FedProx's proximal
    term; and the statistics of a local fit (:meth:`agent_stats`), which a ``training_step``
    feeds through :meth:`_record_batch` and :meth:`_record`. A ``training_step`` updates
    the weights through :meth:`_optimize`, which takes Per-FedAvg's inner and outer steps
    instead of plain ones once :meth:`set_meta_step` is called, and keeps each update's
    gradient without stepping once :meth:`capture_gradients` is (gradient sharing). Calling
    the module on
    observations returns the policy's action distribution.
    """

    policy: MLPPolicy
    curiosity: Curiosity | None

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.episode_return = MeanMetric(nan_strategy="disable")
        self.loss = MeanMetric(nan_strategy="disable")
        self.entropy = MeanMetric(nan_strategy="disable")
        self.num_episodes = 0
        self.num_steps = 0
        self._step_values: dict[str, list[torch.Tensor]] = {}
        self._proximal_mu = 0.0
        self._anchor: dict[str, torch.Tensor] = {}
        self._meta: MetaUpdates | None = None
        self._gradient_sum: dict[str, torch.Tensor] | None = None  # gradient mode's
        self._gradient_count = 0
        self._distillation: DistillationTarget | None = None
        self.lr_scale = 1.0
        self.rho_max = 1.0  # truncation of replayed episodes' importance weights
        # Features act() appends to every observation: a task-conditioned agent's task id.
        self.observation_suffix: np.ndarray | None = None
        self.curiosity = None
        # The grid whose cells the fit's observations fall in are reported (trainer.coverage).
        self.coverage_grid: CoverageGrid | None = None
        self._visited: set[int] = set()

    def _check_hparams(self) -> None:
        """Refuse the hyperparameters every learner has, once they are saved."""
        hp = self.hparams
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
        spec = self.hparams.get("curiosity")
        if spec is None:
            return
        hp = self.hparams
        self.curiosity = make_curiosity(spec, hp.observation_dim, hp.num_actions, hp.continuous)
        self.intrinsic_reward = MeanMetric(nan_strategy="disable")

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

    def set_proximal_term(self, anchor: dict[str, torch.Tensor], mu: float) -> None:
        """Add ``mu / 2 * ||w - anchor||^2`` over every parameter to the loss, as FedProx does.

        Args:
            anchor: The global weights the local fit started from, by parameter name.
            mu: Weight of the term; 0 removes it.
        """
        self._proximal_mu = mu
        self._anchor = {name: anchor[name].detach().clone() for name, _ in self.named_parameters()}

    def _proximal_term(self) -> torch.Tensor:
        """FedProx's term over all parameters (a critic's too); 0 unless it was set."""
        return (
            self._proximal_mu
            / 2
            * sum(
                (parameter - self._anchor[name].to(parameter.device)).square().sum()
                for name, parameter in self.named_parameters()
            )
        )

    def set_distillation_target(self, target: DistillationTarget | None) -> None:
        """Add ``kl_coef * KL(consensus || policy)`` on the probe states to the loss (FedHPD).

        Args:
            target: The probe states, the consensus and the weight; ``None`` removes it.
        """
        self._distillation = target

    def _distillation_term(self) -> torch.Tensor:
        """Distillation's term on the live policy (see :meth:`set_distillation_target`)."""
        return self._distillation.term(self.policy)

    def set_meta_step(self, step: MetaStep | None) -> None:
        """Take Per-FedAvg's local updates (Fallah et al., 2020): see :class:`MetaUpdates`.

        The learner's updates go in pairs: an inner step of ``step.inner_lr`` on one batch
        adapts the weights, and the next batch's update, computed at the adapted weights, is
        applied to the original ones by the learner's optimizer. It holds for every learner
        that updates through :meth:`_optimize`, whatever its loss.

        Args:
            step: The inner step's size and order; ``None`` restores plain updates.
        """
        self._meta = MetaUpdates(step) if step is not None else None

    def _optimize(self, loss: torch.Tensor, max_grad_norm: float | None = None) -> None:
        """One update of the weights on ``loss``: the optimizer's step, or Per-FedAvg's.

        Args:
            loss: The loss to descend, FedProx's term included.
            max_grad_norm: Clip the gradient's norm to this before the step; ``None``: no
                clipping.
        """
        optimizer = self.optimizers()
        if self._meta is not None:
            self._meta.update(self, optimizer, loss, max_grad_norm)
            return
        optimizer.zero_grad()
        self.manual_backward(loss)
        if max_grad_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=max_grad_norm, gradient_clip_algorithm="norm"
            )
        if self._gradient_sum is not None:  # gradient mode: keep the gradient, do not step
            for name, parameter in self.named_parameters():
                if parameter.grad is not None:
                    self._gradient_sum[name] += parameter.grad.detach()
            self._gradient_count += 1
            return
        optimizer.step()

    def capture_gradients(self) -> None:
        """Gradient sharing: each update keeps its gradient and leaves the weights as they are.

        Every update computes the learner's own loss and gradient (clipped as the learner
        clips it), so the weights stay the ones the fit started from, every batch is rolled
        out with them, and :meth:`captured_gradient` is the mean of the updates' gradients.
        """
        self._gradient_sum = {
            name: torch.zeros_like(parameter) for name, parameter in self.named_parameters()
        }
        self._gradient_count = 0

    def captured_gradient(self) -> dict[str, torch.Tensor]:
        """The mean gradient of the updates since :meth:`capture_gradients`, ``state_dict``-shaped.

        Entries that are not parameters (buffers, such as running statistics) are zeros.

        Raises:
            RuntimeError: If gradients are not being captured, or no update happened.
        """
        if self._gradient_sum is None or not self._gradient_count:
            raise RuntimeError("no gradient was captured: call capture_gradients before the fit")
        mean = {name: g / self._gradient_count for name, g in self._gradient_sum.items()}
        return {
            name: mean[name].cpu() if name in mean else torch.zeros_like(value).cpu()
            for name, value in self.state_dict().items()
        }

    def check_gradient_mode(self) -> None:
        """Refuse, with a :class:`ConfigError`, hyperparameters gradient sharing cannot honour."""

    @override
    def transfer_batch_to_device(
        self, batch: EpisodeBatch, device: torch.device, dataloader_idx: int
    ) -> EpisodeBatch:
        return EpisodeBatch(*(t.to(device) if t is not None else None for t in batch))

    def _metrics(self) -> dict[str, MeanMetric]:
        metrics = {
            "episode_return": self.episode_return,
            "loss": self.loss,
            "entropy": self.entropy,
        }
        if self.curiosity is not None:
            metrics["intrinsic_reward"] = self.intrinsic_reward
        return metrics

    def metric_names(self) -> list[str]:
        """The training metrics a local fit reports besides its return, such as ``loss``.

        A round's row has each as ``train_<name>``, averaged over the round's agents.
        """
        return [name for name in self._metrics() if name != "episode_return"]

    @override
    def on_train_epoch_start(self) -> None:
        for metric in self._metrics().values():
            metric.reset()
        self._step_values = {name: [] for name in self._metrics()}
        self.num_episodes = 0
        self.num_steps = 0
        self._visited = set()
        for statistics in self.statistics_modules().values():
            statistics.start_fit()

    @override
    def on_train_batch_end(self, outputs: Any, batch: EpisodeBatch, batch_idx: int) -> None:
        # After the batch's update: the batch was rolled out and trained with the same
        # statistics, and the next one will be both with these observations folded in.
        if self.policy.normalizer is not None:
            self.policy.normalizer.observe(batch.observations[batch.own_mask()])
        if self.coverage_grid is not None:  # the cells of the agent's own steps
            observations = batch.observations[batch.own_mask()].detach().cpu().numpy()
            self._visited.update(self.coverage_grid.cells(observations).tolist())

    def statistics_modules(self) -> dict[str, RunningStatistics]:
        """The running statistics in the module, by name: a federation pools them as statistics.

        These are the :class:`~fedrl_lightning.statistics_module.RunningStatistics` among the
        submodules: the policy's observation normalizer, an actor-critic's reward normalizer.
        Their buffers are in the ``state_dict``, but a strategy never aggregates them; the
        server pools what each agent observed (:meth:`fit_statistics`) into them instead.
        """
        return {
            name: module
            for name, module in self.named_modules()
            if isinstance(module, RunningStatistics)
        }

    def fit_statistics(self) -> dict[str, dict[str, Any]]:
        """What each of :meth:`statistics_modules` observed in this local fit, by name."""
        return {name: module.fit_statistics() for name, module in self.statistics_modules().items()}

    @override
    def on_train_epoch_end(self) -> None:
        if self._meta is not None:  # a last inner step without its outer step is dropped
            self._meta.discard(self)
        # Each metric takes the epoch's step values in one update: a torchmetrics update per
        # step would cost more than the step's arithmetic.
        for name, metric in self._metrics().items():
            if self._step_values[name]:
                metric.update(torch.cat(self._step_values[name]))
            self._step_values[name] = []

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Add a detached scalar or vector to the epoch's values of metric ``name``."""
        self._step_values[name].append(value.detach().reshape(-1))

    def _record_batch(self, batch: EpisodeBatch) -> None:
        """Count a batch's own episodes and steps, and record their returns (not replayed ones)."""
        own = ~batch.replayed_episodes()
        self._step_values["episode_return"].append(batch.episode_returns[own])
        self.num_episodes += int(own.sum())
        self.num_steps += int(batch.own_mask().sum())

    def replay_weights(self, log_probs: torch.Tensor, batch: EpisodeBatch) -> torch.Tensor:
        """``[episodes, steps]`` importance weights: 1 on own episodes, truncated on replayed.

        A replayed episode's step gets ``min(rho_max, pi(a_t|s_t) / mu(a_t|s_t))``, ``mu``
        being its behaviour policy's log-probability (``batch.log_probs``); see
        :func:`~fedrl_lightning.learners.off_policy.truncated_importance_weights`.
        """
        weights = truncated_importance_weights(log_probs, batch.log_probs, self.rho_max)
        replayed = batch.replayed_episodes().unsqueeze(1)
        return torch.where(replayed & batch.mask, weights, torch.ones_like(weights))

    def agent_stats(self) -> dict[str, Any]:
        """What the last local fit did: episodes, environment steps and mean episode return.

        ``metrics`` holds the mean of each other recorded metric (the loss and the entropy,
        and whatever a learner adds, such as PPO's ``approx_kl``); the server reports each
        as a ``train_<name>`` column, averaged over the round's agents. With a
        :attr:`coverage_grid`, ``visited_cells`` holds the ids of the cells the fit's
        observations fell in.
        """
        visited = {}
        if self.coverage_grid is not None:
            visited = {"visited_cells": torch.tensor(sorted(self._visited), dtype=torch.int64)}
        return visited | {
            "num_episodes": self.num_episodes,
            "num_steps": self.num_steps,
            "mean_return": float(self.episode_return.compute()),
            "metrics": {
                name: float(metric.compute())
                for name, metric in self._metrics().items()
                if name != "episode_return" and metric.update_called
            },
        }

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
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

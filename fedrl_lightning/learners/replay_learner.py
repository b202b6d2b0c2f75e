"""The base of the off-policy learners: trained from the agent's own replay buffer, across rounds.

What an agent keeps to itself between its rounds, its *memory*, is what the federation never
averages: its replay buffer, its count of env steps (which ε-greedy and the target updates
follow), its target networks and anything a subclass adds (SAC's temperature). The learner
gives it as :meth:`ReplayLearner.agent_memory` after a fit and takes it back with
:meth:`ReplayLearner.load_agent_memory` before the next; the
:class:`~fedrl_lightning.federation.components.agent_memory.AgentMemory` round component keeps
it in the run folder, one file per agent, so a population costs disk, not memory.

Target networks live in :attr:`ReplayLearner.targets`, outside the ``state_dict``: strategies,
attacks and traffic counts see the online networks only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from torch import nn
from torch.utils.data import IterableDataset
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners.base import Learner
from fedrl_lightning.learners.off_policy import polyak_update
from fedrl_lightning.rollouts.replay import ReplayBuffer
from fedrl_lightning.rollouts.transitions import Act, StepsBatch, TransitionDataset
from fedrl_lightning.seeding import Stream

if TYPE_CHECKING:
    from fedrl_lightning.federation.components.base import RoundComponent
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.federation.strategies.base import Strategy
    from fedrl_lightning.population.agents import AgentPopulation

__all__ = ["ReplayLearner"]


class ReplayLearner(Learner):
    """A learner whose dataset steps the env into its agent's replay buffer and draws from it.

    Subclasses save, among their hyperparameters, ``buffer_size``, ``batch_size``,
    ``learning_starts``, ``train_freq``, ``gradient_steps``, ``steps_per_round``,
    ``n_step``, ``tau``, ``target_update_interval``, ``persist_replay`` and
    ``sync_targets``; build their online networks, then call :meth:`_make_target` for each
    network that has a target; and give :meth:`behaviour` (how the agent acts at its step
    ``t``). A local fit takes ``steps_per_round`` env steps, whatever
    ``trainer.episodes_per_round`` says.
    """

    def __init__(self) -> None:
        super().__init__()
        self.targets: dict[str, nn.Module] = {}
        """The target networks by the name of their online network: the agent's own."""
        self.replay: ReplayBuffer | None = None
        """The agent's buffer, once a fit has made or loaded it."""
        self.agent_steps = 0
        """The agent's own env steps over the whole run, up to the last item trained on."""

    def _check_replay_hparams(self) -> None:
        """Refuse the replay and target options that cannot work, naming each."""
        hp = self.hparams
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps", "n_step"):
            if hp[name] < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {hp[name]}")
        for name in ("learning_starts", "steps_per_round"):
            if hp[name] < 0:
                raise ConfigError(f"model.{name} must not be negative, got {hp[name]}")
        if hp.buffer_size < hp.batch_size:
            raise ConfigError(
                f"model.buffer_size ({hp.buffer_size}) must be at least model.batch_size "
                f"({hp.batch_size}): a minibatch is drawn from the buffer"
            )
        if not 0 < hp.tau <= 1:
            raise ConfigError(f"model.tau must be in (0, 1], got {hp.tau}")
        interval = hp.get("target_update_interval", 1)  # TD3's targets follow its actor's
        if interval < 1:
            raise ConfigError(f"model.target_update_interval must be at least 1, got {interval}")

    def _make_target(self, name: str) -> None:
        """Give the online network ``name`` a target network: a frozen copy of it."""
        target = copy.deepcopy(getattr(self, name))
        target.requires_grad_(False)
        self.targets[name] = target

    @override
    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> ReplayLearner:
        # .to(device), .double() and the like move the target networks with the module
        super()._apply(fn, recurse)
        for target in self.targets.values():
            target._apply(fn, recurse)
        return self

    @override
    def check_fits(self, population: AgentPopulation) -> None:
        """Refuse a population it cannot train on: also one of vector envs (one env an agent).

        Raises:
            ConfigError: Naming the option.
        """
        super().check_fits(population)
        if population.num_envs != 1:
            raise ConfigError(
                f"model {type(self).__name__} steps one environment per agent; "
                f"set data.num_envs to 1 (it is {population.num_envs})"
            )

    def check_strategy(self, strategy: Strategy) -> None:
        """Refuse a strategy whose local updates the learner cannot take (all it can here).

        Raises:
            ConfigError: Naming the strategy.
        """

    @override
    def round_components(self) -> list[RoundComponent]:
        """The agent's memory, kept in the run folder between its rounds."""
        from fedrl_lightning.federation.components.agent_memory import AgentMemory

        return [AgentMemory()]

    def agent_memory(self) -> dict[str, Any]:
        """What the agent keeps to itself until its next fit: tensors and plain values.

        ``agent_steps``, ``targets`` (each target network's ``state_dict``) and, unless
        ``persist_replay`` is off, ``replay`` (the buffer's ``state_dict``).
        """
        memory: dict[str, Any] = {
            "agent_steps": self.agent_steps,
            "targets": {name: dict(net.state_dict()) for name, net in self.targets.items()},
        }
        if self.hparams.persist_replay and self.replay is not None:
            memory["replay"] = self.replay.state_dict()
        return memory

    def load_agent_memory(self, memory: Mapping[str, Any] | None) -> None:
        """Continue the agent from :meth:`agent_memory`'s output; ``None``: its first fit.

        Call it with the fit's start weights loaded. A first fit, or any fit with
        ``sync_targets``, starts each target from its online network's weights; the buffer is
        made when the fit's env is known.

        Raises:
            ValueError: If the memory is not this learner's.
        """
        self.replay = None
        self.agent_steps = 0
        targets = {}
        if memory is not None:
            steps = memory.get("agent_steps")
            if not isinstance(steps, int) or steps < 0:
                raise ValueError(f"agent memory has agent_steps {steps!r}")
            self.agent_steps = steps
            targets = memory.get("targets", {})
            if "replay" in memory:
                self.replay = ReplayBuffer.from_state_dict(memory["replay"], "agent memory")
        for name, target in self.targets.items():
            if name in targets and not self.hparams.sync_targets:
                target.load_state_dict(targets[name])
            else:
                target.load_state_dict(getattr(self, name).state_dict())

    @override
    def most_episodes_per_fit(self, episodes_per_round: int) -> int:
        """``steps_per_round``: a fit takes that many steps, an episode one at least."""
        return int(self.hparams.steps_per_round)

    @override
    def rollout_dataset(
        self, env: gym.Env | gym.vector.VectorEnv, fit: AgentFit, **options: Any
    ) -> IterableDataset:
        """``steps_per_round`` steps of ``env`` into the agent's buffer, and draws from it.

        Args:
            env: The agent's environment.
            fit: The fit under way.
            **options: Trajectory sharing's ``replay`` (other agents' episodes, which join
                the buffer first) and ``keep_episodes`` (keep the fit's own to share).

        Raises:
            ConfigError: If ``env`` is a vector env (``data.num_envs`` above 1).
            TypeError: If a round component sets another option.
        """
        unknown = sorted(set(options) - {"replay", "keep_episodes"})
        if unknown:
            raise TypeError(f"off-policy learners take no options {unknown}")
        if isinstance(env, gym.vector.VectorEnv):
            raise ConfigError(
                f"model {type(self).__name__} steps one environment per agent; "
                "set data.num_envs to 1"
            )
        hp = self.hparams
        if self.replay is None:
            self.replay = ReplayBuffer.from_spaces(
                hp.buffer_size, env.observation_space, env.action_space
            )
        byzantine = fit.population.byzantine.acts_randomly(fit.task.agent_id)
        act = self.random_behaviour(env, fit.seed(Stream.ACTIONS)) if byzantine else None
        return TransitionDataset(
            env=env,
            buffer=self.replay,
            act=act or self.behaviour(env, fit.seed(Stream.ACTIONS)),
            num_steps=hp.steps_per_round,
            start_step=self.agent_steps,
            train_freq=hp.train_freq,
            gradient_steps=hp.gradient_steps,
            learning_starts=hp.learning_starts,
            batch_size=hp.batch_size,
            n_step=hp.n_step,
            gamma=hp.gamma,
            env_seed=fit.seed(Stream.ENV),
            sample_seed=fit.seed(Stream.REPLAY_SAMPLE),
            replay=options.get("replay", ()),
            keep_episodes=options.get("keep_episodes", False),
        )

    def behaviour(self, env: gym.Env, seed: int) -> Act:
        """How the agent acts at its step ``t`` while it trains: ``act(observation, t)``."""
        raise NotImplementedError

    @staticmethod
    def random_behaviour(env: gym.Env, seed: int) -> Act:
        """Uniformly random actions (a Byzantine agent's ``random_action`` attack)."""
        space = env.action_space
        space.seed(seed)
        return lambda observation, step: space.sample()

    def _record_steps(self, batch: StepsBatch) -> None:
        """Count the item's env steps and episodes, and record the finished episodes' returns.

        The episode the fit ends in counts as one (the fit's end truncates it). Its partial
        return is recorded only when no episode finished in the fit, so that every fit reports
        a return.
        """
        self._step_values["episode_return"].append(batch.episode_returns)
        self.num_episodes += len(batch.episode_returns)
        if len(batch.cut_return):
            if self.num_episodes == 0:
                self._step_values["episode_return"].append(batch.cut_return)
            self.num_episodes += 1
        self.num_steps += batch.num_steps
        self.agent_steps = batch.agent_steps

    def _record_steps_and_update_targets(self, batch: StepsBatch) -> None:
        """Count the item's steps, then update the targets if an interval ended in them.

        SB3's DQN schedule: each target moves towards its online network (a copy with
        ``tau`` 1) once per ``target_update_interval`` of the agent's env steps, counted over
        the whole run; here, once the item that took the step is trained on.
        """
        interval = self.hparams.target_update_interval
        crossed = batch.agent_steps // interval > self.agent_steps // interval
        self._record_steps(batch)
        if crossed:
            for name, target in self.targets.items():
                polyak_update(target, getattr(self, name), self.hparams.tau)

    @override
    def transfer_batch_to_device(  # type: ignore[override]
        self, batch: StepsBatch, device: torch.device, dataloader_idx: int
    ) -> StepsBatch:
        """The item with its transitions on ``device``."""
        if batch.transitions is None:
            return batch
        moved = type(batch.transitions)._make(t.to(device) for t in batch.transitions)
        return batch._replace(transitions=moved)

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Nothing of the episodic learners' bookkeeping: no running statistics or coverage."""

"""What each off-policy agent keeps between its rounds: its replay buffer, targets and step count.

The learner says what its agent keeps (:meth:`ReplayLearner.agent_memory
<fedrl_lightning.learners.replay_learner.ReplayLearner.agent_memory>`); this component keeps
it in the run folder's ``memory/``, one file per agent, through the same store as agents'
personal parameters (:class:`~fedrl_lightning.federation.server.personal_store.PersonalStore`):
a round's fits write pending files, committed once the round's checkpoint is saved, so that a
run killed anywhere resumes every agent's memory exactly as of the round it resumes. The
server reads an agent's file only to send it to that agent's fit, as bytes it never unpickles,
so a population of 1,000 agents costs what the sampled ones do in memory, and the rest in
disk. A fit on a Ray worker gets the bytes in its task and sends its new memory back with its
checkpoint, so no storage need be shared between machines. An agent's memory is its own: it
counts as no traffic.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import FitPart, RoundComponent
from fedrl_lightning.federation.server.personal_store import PersonalStore, recover_run_store

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.federation.messages import AgentUpdate
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.learners.replay_learner import ReplayLearner
    from fedrl_lightning.population.agents import AgentPopulation
    from fedrl_lightning.run.run_folder import RunFolder

__all__ = ["AgentMemory", "MemoryPart"]

MEMORY_KEY = "memory"  # where an agent's memory file holds it


def replay_learner(fit: AgentFit) -> ReplayLearner:
    """The fit's learner, which keeps a memory: an off-policy learner."""
    from fedrl_lightning.learners.replay_learner import ReplayLearner

    if not isinstance(fit.module, ReplayLearner):
        raise TypeError(f"{type(fit.module).__name__} keeps no agent memory")
    return fit.module


@dataclass(frozen=True)
class MemoryPart(FitPart):
    """An agent's memory going into its fit, and where the fit writes the new one.

    Attributes:
        memory: The agent's memory file's bytes (a :class:`PersonalStore` file); ``None``
            for an agent's first fit.
        path: Where the fit writes the agent's new memory (its pending file).
    """

    memory: bytes | None
    path: Path

    @override
    def prepare(self, fit: AgentFit) -> None:
        """Give the learner, its start weights loaded, the agent's memory."""
        memory = None
        if self.memory is not None:
            memory = torch.load(io.BytesIO(self.memory), map_location="cpu", weights_only=True)
            memory = memory[MEMORY_KEY]
        replay_learner(fit).load_agent_memory(memory)

    @override
    def send(self, fit: AgentFit) -> None:
        """Write the agent's new memory to its pending file, atomically."""
        memory = replay_learner(fit).agent_memory()
        PersonalStore.save(self.path, fit.task.round_idx, memory, MEMORY_KEY)

    @override
    def written_files(self) -> tuple[Path, ...]:
        return (self.path,)

    @override
    def relocated(self, folder: Path) -> FitPart:
        return dataclasses.replace(self, path=folder / "memory.ckpt")

    @override
    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class AgentMemory(RoundComponent):
    """Keeps each off-policy agent's memory in the run folder between the agent's rounds.

    Off-policy learners add it to every run themselves (``Learner.round_components``); its
    state in the round checkpoint is the round each agent's memory is from.
    """

    name = "memory"

    def __init__(self) -> None:
        self.versions: dict[int, int] = {}
        self._written: dict[int, int] = {}  # the agents whose memory the last round wrote
        self.store: PersonalStore | None = None

    @override
    def setup(self, trainer: FederatedTrainer, model: Learner, population: AgentPopulation) -> None:
        """Start with no agent's memory.

        Raises:
            ConfigError: If the run has more than one task (their spaces may differ),
                fine-tunes after each round (a local fit outside any agent's memory), or the
                learner cannot take the strategy's local updates.
        """
        from fedrl_lightning.learners.replay_learner import ReplayLearner

        if isinstance(model, ReplayLearner):
            model.check_strategy(trainer.strategy)
        if trainer.finetune_episodes:
            raise ConfigError(
                f"trainer.finetune_episodes cannot be used with model {type(model).__name__} "
                "yet: its agents train from the replay buffers they keep; leave it at 0"
            )
        if population.tasks is not None:
            raise ConfigError(
                f"model {type(model).__name__} cannot train on data.tasks yet: each agent's "
                "replay buffer has one environment's spaces"
            )
        self.versions, self._written = {}, {}

    @override
    def open(self, run: RunFolder) -> None:
        """Keep the agents' memory in ``run``'s ``memory/``."""
        run.memory.mkdir(exist_ok=True)
        self.store = PersonalStore(run.memory, MEMORY_KEY)

    @override
    def resume(self, checkpoint: Path, completed_round: int) -> None:
        """Bring the agents' memory files to the checkpoint.

        Raises:
            ConfigError: If the checkpoint lies outside its run folder, or the memory files
                are newer than it (an earlier round resumed).
        """
        if self.versions:
            recover_run_store(
                checkpoint, self.versions, completed_round, "replay buffers", "memory", MEMORY_KEY
            )

    @override
    def fit_inputs(self, agent: int, round_idx: int) -> FitPart:
        """Agent ``agent``'s memory as of its last round, and its pending file of this round."""
        store = self.store
        assert store is not None  # open() ran
        memory = None
        if agent in self.versions:
            version = self.versions[agent]
            pending = store.pending_path(agent, version)
            path = pending if pending.is_file() else store.path(agent)
            memory = path.read_bytes()
        return MemoryPart(memory, store.pending_path(agent, round_idx))

    @override
    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """The round's agents that succeeded now hold this round's memory."""
        self._written = dict.fromkeys((u.agent_id for u in updates), round_idx)
        self.versions |= self._written

    @override
    def commit(self) -> None:
        """Once a round is saved, make its agents' new memory theirs."""
        if self.store is not None:
            self.store.commit(self._written)

    @override
    def discard_pending(self) -> None:
        """Drop the memory a round that will not be saved wrote."""
        if self.store is not None:
            self.store.discard_pending()

    @override
    def state_dict(self) -> dict[str, Any]:
        """The round each agent's memory is from."""
        return {"versions": {str(agent): r for agent, r in self.versions.items()}}

    @override
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.versions = {int(agent): int(r) for agent, r in state.get("versions", {}).items()}
        self._written = {}

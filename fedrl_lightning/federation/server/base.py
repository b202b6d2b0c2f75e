"""The server-model base class: what the server holds between rounds, and what agents deploy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.components.base import RoundComponent
from fedrl_lightning.federation.messages import StateDict

if TYPE_CHECKING:
    from fedrl_lightning.federation.server.personal_store import PersonalStore

__all__ = ["ServerModel", "restored_server"]


class ServerModel(RoundComponent, ABC):
    """The server's side of the run's model: a round component that also holds the weights.

    Besides the component's hooks (what each agent's fit is given, how the round's updates
    combine, its columns and state, under the round state's ``shared`` key), a server model
    says what the global model is, which hyperparameters build each agent's model, and what
    each agent and each task deploys, which evaluation and ``load_module`` use.

    Attributes:
        task_names: The entries each task has a value of its own of; none unless sharing
            scopes give some, so one global model is evaluated for every agent.
        task_sizes: How many agents each task has; agents are numbered task by task.
        task_hparams: Each task's model's hyperparameters (empty: the model's own).
    """

    name = "shared"
    task_names: Sequence[str] = ()
    task_sizes: list[int]
    task_hparams: list[dict[str, Any]]

    @property
    @abstractmethod
    def global_state(self) -> StateDict:
        """The global model's ``state_dict``, which the round checkpoint holds."""

    @abstractmethod
    def resume_weights(self, global_state: StateDict) -> None:
        """Take the resumed round checkpoint's global weights (before :meth:`resume`)."""

    @property
    @abstractmethod
    def own_policies(self) -> bool:
        """Whether agents deploy policies of their own, beyond their task's."""

    @abstractmethod
    def hparams_of(self, agent: int) -> dict[str, Any]:
        """The hyperparameters of agent ``agent``'s model."""

    @abstractmethod
    def deployed_state(self, agent: int) -> StateDict:
        """The whole ``state_dict`` agent ``agent`` would deploy."""

    def task_deployed_state(self, task: int) -> StateDict:
        """The whole ``state_dict`` of task ``task``'s global policy: the global model."""
        return dict(self.global_state)

    def task_of(self, agent: int) -> int:
        """The task of agent ``agent``."""
        first = 0
        for task, size in enumerate(self.task_sizes):
            if agent < first + size:
                return task
            first += size
        return 0


def restored_server(
    state: Mapping[str, Any],
    global_state: StateDict,
    store: PersonalStore | None,
    source: str = "the checkpoint",
) -> ServerModel:
    """The server model a round checkpoint describes, to say what its agents and tasks deploy.

    Args:
        state: The checkpoint's ``fedrl.shared`` entry.
        global_state: Its global weights.
        store: The run folder's agents' own values (``personal/``); ``None``: the
            checkpoint lies outside its run folder.
        source: The checkpoint, for messages.

    Raises:
        ConfigError: If the saved state is malformed.
    """
    from fedrl_lightning.federation.server.clustered import ClusteredModel
    from fedrl_lightning.federation.server.distilled import DistilledModels
    from fedrl_lightning.federation.server.shared import SharedModel

    if state.get("clusters") is not None:
        return ClusteredModel.restored(state, source)
    try:
        if state.get("agent_hparams") is not None:
            return DistilledModels.restored(state, global_state, store)
        return SharedModel.restored(state, global_state, store)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{source}: its server model's state is malformed ({err!r})") from None

"""The round-component protocol: what plugs into a round, on the server's side and the agent's.

A round component adds one idea to the federation (trajectory sharing, coverage, the server
model itself; next, privacy accounting or per-agent replay stores) without the trainer or the
messages naming it:

- on the server, a :class:`RoundComponent` gives each sampled agent's
  :class:`~fedrl_lightning.federation.messages.LocalFit` its :class:`FitPart` (in
  ``LocalFit.extras`` under the component's ``name``), combines what the round's agents sent
  back, adds its columns to the round's metrics row and its state to the round checkpoint;
- on the agent, the :class:`FitPart` does the component's share of the local fit, writes what
  it sends into the agent's checkpoint, and, back on the server, reads and checks that reply
  (it lands in ``AgentUpdate.extras`` under the same name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from fedrl_lightning.federation.local_fit import AgentFit
    from fedrl_lightning.federation.messages import AgentUpdate
    from fedrl_lightning.federation.trainer import FederatedTrainer
    from fedrl_lightning.learners import Learner
    from fedrl_lightning.population.agents import AgentPopulation
    from fedrl_lightning.run.run_folder import RunFolder

__all__ = ["FitPart", "InvalidUpdate", "RoundComponent"]

StateDict = dict[str, torch.Tensor]


class InvalidUpdate(Exception):
    """An agent's checkpoint is unreadable, or holds what must not be aggregated."""


@dataclass(frozen=True)
class FitPart:
    """A component's part of one agent's local fit: what the agent is given, does and sends.

    Subclasses are small frozen dataclasses (they travel to Ray workers with the
    ``LocalFit``) that override the hooks they need; each hook does nothing by default. The
    local fit calls them in this order, for every part in ``LocalFit.extras``:
    :meth:`start`, :meth:`prepare`, :meth:`dataset_options`, the training, :meth:`send`,
    :meth:`report`. The server then calls :meth:`read` on the agent's checkpoint.
    """

    sends: ClassVar[str | None] = None
    """What the agent's ``state_dict`` holds when this part changes it (``gradient``);
    ``None``: trained weights."""

    def start(self, fit: AgentFit) -> None:
        """Before the weights are loaded: choose ``fit.start``, the weights the fit starts from."""

    def prepare(self, fit: AgentFit) -> None:
        """With the start weights loaded, before training: configure ``fit.module``."""

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments of the agent's :class:`EpisodeDataset` that this part sets."""
        return {}

    def send(self, fit: AgentFit) -> None:
        """After training: choose what goes back (``fit.update`` from ``fit.origin``)."""

    def report(self, fit: AgentFit) -> dict[str, Any]:
        """Entries this part adds to the agent's checkpoint, besides the weights."""
        return {}

    def reference(self, state: StateDict) -> StateDict:
        """The entries, of the start weights ``state``, that the agent is sent and sends back."""
        return state

    def message(self) -> dict[str, torch.Tensor]:
        """Tensors the agent is sent beside the weights, for the round's ``bytes_sent``."""
        return {}

    def copies(self) -> int:
        """How many models of the global model's layout the agent is sent."""
        return 1

    def read(self, checkpoint: Mapping[str, Any], stats: Mapping[str, Any], path: Path) -> object:
        """This part's reply in an agent's checkpoint, checked; ``None`` when it sends none.

        Args:
            checkpoint: The agent's checkpoint, loaded with ``weights_only=True``.
            stats: Its ``agent_stats``.
            path: Its path, for messages.

        Raises:
            InvalidUpdate: With the reason, if the reply cannot be used.
        """
        return None

    def written_files(self) -> tuple[Path, ...]:
        """Files the agent's fit writes for this part besides its checkpoint (its own values)."""
        return ()

    def relocated(self, folder: Path) -> FitPart:
        """This part writing :meth:`written_files` into ``folder`` instead (on a Ray worker)."""
        return self

    def discard(self) -> None:
        """The agent failed: drop whatever its fit left for this part (its pending files)."""


class RoundComponent:
    """The server's side of a round component; the trainer loops over its components.

    Every hook has a default that does nothing, so a component overrides what it uses.
    Its state goes into the round checkpoint under :attr:`name`, which also keys its
    :class:`FitPart` in ``LocalFit.extras`` and its agents' replies in ``AgentUpdate.extras``.
    """

    name: ClassVar[str] = ""
    """The component's key in the messages and in the round checkpoint's state."""

    def setup(self, trainer: FederatedTrainer, model: Learner, population: AgentPopulation) -> None:
        """Start a fit: check the run's settings and begin from an empty state.

        Raises:
            ConfigError: If the component cannot work with this run.
        """

    def open(self, run: RunFolder) -> None:
        """The run folder is open: keep what the component stores in it there."""

    def resume(self, checkpoint: Path, completed_round: int) -> None:
        """After :meth:`load_state_dict`, bring what the run folder holds to the checkpoint."""

    def fit_inputs(self, agent: int, round_idx: int) -> FitPart | None:
        """Agent ``agent``'s part in round ``round_idx``; ``None``: it has none."""
        return None

    def aggregate(self, updates: Sequence[AgentUpdate], round_idx: int) -> None:
        """Combine what round ``round_idx``'s agents sent (the updates, in agent order)."""

    def round_columns(self) -> dict[str, Any]:
        """Columns of the last aggregated round's metrics row."""
        return {}

    def metric_names(self) -> list[str]:
        """The numeric columns :meth:`round_columns` adds."""
        return []

    def commit(self) -> None:
        """The last aggregated round is saved: make what it wrote final."""

    def discard_pending(self) -> None:
        """The round under way will not be saved: drop what it wrote."""

    def state_dict(self) -> dict[str, Any]:
        """What the next rounds depend on, saved in every round checkpoint."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output (after :meth:`setup`)."""

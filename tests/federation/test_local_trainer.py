"""A local fit's Trainer finds the callback factories that packages register, once a process."""

import sys
import textwrap
from importlib import metadata

from conftest import fit_one_agent
from lightning.fabric.utilities.registry import _load_external_callbacks

from fedrl_lightning import Reinforce
from fedrl_lightning.federation import local_trainer

GROUP = "lightning.pytorch.callbacks_factory"
SPY = '''
import lightning as L

STARTED = []


class Spy(L.Callback):
    """Records itself at each fit's start."""

    def on_fit_start(self, trainer, pl_module):
        STARTED.append(self)


def callbacks():
    return [Spy()]
'''


def test_every_local_fit_gets_fresh_callbacks_from_a_registered_factory(tmp_path, monkeypatch):
    """A package on the path registers a factory, as Lightning's plug-ins do: each of three
    local fits runs the factory's callback, a new one each time, and the installed packages'
    metadata is read once for the three."""
    dist = tmp_path / "fit_spy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fit-spy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nspy = fit_spy:callbacks\n")
    (tmp_path / "fit_spy.py").write_text(textwrap.dedent(SPY))
    monkeypatch.syspath_prepend(str(tmp_path))
    lookups = []
    entry_points = metadata.entry_points

    def counted(**selection):
        lookups.append(selection)
        return entry_points(**selection)

    monkeypatch.setattr(metadata, "entry_points", counted)
    local_trainer._callback_factories.cache_clear()  # found before the package was on the path
    try:
        assert [type(c).__name__ for c in _load_external_callbacks(GROUP)] == ["Spy"]  # Lightning's
        lookups.clear()
        state = Reinforce(hidden_dim=8).state_dict()
        for agent in range(3):
            fit_one_agent(tmp_path, state, agent_id=agent, name=f"agent-{agent}.ckpt")

        started = sys.modules["fit_spy"].STARTED
        assert len(started) == 3 and len({id(c) for c in started}) == 3
        assert lookups == [{"group": GROUP}]
    finally:
        local_trainer._callback_factories.cache_clear()
        sys.modules.pop("fit_spy", None)

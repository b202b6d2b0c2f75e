"""``load_module``: any learner from any round or agent checkpoint, without trusting the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.server.base import restored_server
from fedrl_lightning.federation.server.personal_store import PersonalStore
from fedrl_lightning.federation.trainer import FEDRL_KEY
from fedrl_lightning.federation.updates import SENDS_KEY
from fedrl_lightning.learners import LEARNERS, Learner, Reinforce
from fedrl_lightning.run.checkpoints import LEARNER_KEY, load_checkpoint
from fedrl_lightning.run.run_folder import RunFolder

__all__ = ["load_module"]


def load_module(
    path: str | Path,
    learners: Sequence[type[Learner]] = (),
    agent: int | None = None,
    task: int | None = None,
) -> Learner:
    """The learner saved in a round or agent checkpoint, with its weights, in eval mode.

    The checkpoint is loaded with ``weights_only=True`` and names its learner by class name
    only. That name is looked up among the learners fedrl_lightning ships and those passed in
    ``learners``: a checkpoint never makes this import a module it names.

    With ``agent``, the module is what agent ``agent`` would deploy: the global weights with
    its task's task-scoped ones and its own agent-scoped ones (from the run folder's
    ``personal/``; an agent that never trained has its task's initial ones), sized for its
    task's environment. When the policy is task-conditioned, the module's ``act`` appends the
    agent's one-hot task id to the environment's observations itself. With ``task``, it is
    that task's global policy: the global weights with the task's task-scoped ones (and the
    task's initial agent-scoped ones). With IFCA (``trainer.server Clustered``), agent ``agent``
    deploys the model of the cluster it chose last (an agent that never chose: the global
    model, the largest cluster's). With policy distillation (``trainer.server Distilled``), agent
    ``agent`` deploys its own whole model, of its own sizes (``data.model_heterogeneity``).

    Args:
        path: A round checkpoint (``checkpoints/last.ckpt``, ``round-0012.ckpt``) or an agent's.
        learners: Your own learner classes that the checkpoint may name.
        agent: The agent whose own parameters to load; ``None``: the global model.
        task: The task whose global policy to load (with ``agent`` left out).

    Returns:
        The module, in eval mode.

    Raises:
        ConfigError: If the file is not a readable checkpoint, names an unknown learner,
            holds weights that do not fit it or an agent's gradient; with ``agent``, if it is
            not a round checkpoint in its run folder, or the agent's values are newer than it.
    """
    checkpoint = load_checkpoint(path)
    if checkpoint.get(SENDS_KEY) == "gradient":
        raise ConfigError(
            f"checkpoint {path}: an agent's gradient (trainer.server Gradient), not a "
            "policy; load a round checkpoint, such as checkpoints/last.ckpt"
        )
    suffix = None
    if agent is not None or task is not None:
        own, hparams, suffix = _deployed_parts(path, checkpoint, agent, task)
        checkpoint["state_dict"] = {**checkpoint["state_dict"], **own}
        checkpoint["hyper_parameters"] = hparams or checkpoint.get("hyper_parameters")
    known = {cls.__name__: cls for cls in (*LEARNERS, *learners)}
    # Checkpoints written before learners were named held REINFORCE, the only learner then.
    name = checkpoint.get(LEARNER_KEY, Reinforce.__name__)
    if not isinstance(name, str) or name not in known:
        raise ConfigError(
            f"checkpoint {path}: its learner {name!r} is not one fedrl_lightning ships "
            f"({', '.join(cls.__name__ for cls in LEARNERS)}); pass your class as "
            "load_module(path, learners=[YourLearner])"
        )
    hparams = checkpoint.get("hyper_parameters")
    try:
        module = known[name](**(hparams if isinstance(hparams, dict) else {}))
        module.load_state_dict(checkpoint["state_dict"])
    except Exception as err:  # hyperparameters from a file can fail a constructor anywhere
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"checkpoint {path}: does not fit {name} ({reason})") from None
    module.observation_suffix = suffix
    return module.eval()


def _deployed_parts(
    path: str | Path, checkpoint: dict[str, Any], agent: int | None, task: int | None
) -> tuple[dict[str, Any], dict[str, Any] | None, np.ndarray | None]:
    """What agent ``agent``, or task ``task``'s global policy, deploys, by checkpoint ``path``.

    The server model the checkpoint saved says it (:func:`restored_server`), as it did when
    the run evaluated them.

    Returns:
        The whole ``state_dict``, the hyperparameters (``None``: the checkpoint's), and the
        one-hot task id (``None``: the policy is not conditioned).
    """
    state = checkpoint.get(FEDRL_KEY)
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path}: agent= and task= need a round checkpoint")
    shared = state.get("shared") or {}
    run = RunFolder.of_checkpoint(Path(path))
    store = PersonalStore(run.personal) if run is not None else None
    server = restored_server(shared, checkpoint["state_dict"], store, f"checkpoint {path}")
    if agent is not None:
        own_models = shared.get("agent_hparams")  # distillation: every agent has its own model
        if own_models is not None and not 0 <= agent < len(own_models):
            raise ConfigError(f"checkpoint {path}: its run has no agent {agent}")
        if agent in (shared.get("versions") or {}):
            _check_own_values(path, store, agent, int(state["round"]))
        task = server.task_of(agent)
    assert task is not None  # load_module gives an agent or a task
    if not 0 <= task < len(server.task_sizes or [1]):
        raise ConfigError(f"checkpoint {path}: its run has no task {task}")
    if agent is not None:
        deployed = server.deployed_state(agent)
        hparams = server.hparams_of(agent) if server.task_hparams else None
    else:
        deployed = server.task_deployed_state(task)
        hparams = server.task_hparams[task] if task < len(server.task_hparams) else None
    suffix = None
    if shared.get("conditioned"):
        suffix = np.zeros(len(server.task_sizes), np.float32)
        suffix[task] = 1.0
    return deployed, hparams, suffix


def _check_own_values(
    path: str | Path, store: PersonalStore | None, agent: int, round_idx: int
) -> None:
    """Refuse agent ``agent``'s own values where they cannot be read, or are newer than it."""
    if store is None:
        raise ConfigError(
            f"checkpoint {path}: agent {agent}'s own parameters are in its run folder's "
            "personal/; load the checkpoint from inside that folder"
        )
    personal = load_checkpoint(store.path(agent))
    if int(personal.get("round", 0)) > round_idx:
        raise ConfigError(
            f"checkpoint {path}: agent {agent}'s own parameters are from round "
            f"{personal['round']}, after this checkpoint's round {round_idx}"
        )

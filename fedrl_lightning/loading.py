"""``load_module``: any learner from any round or agent checkpoint, without trusting the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedrl_lightning.checkpoints import LEARNER_KEY, load_checkpoint
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.learners import LEARNERS, Learner, Reinforce

__all__ = ["load_module"]


def load_module(path: str | Path, learners: Sequence[type[Learner]] = ()) -> Learner:
    """The learner saved in a round or agent checkpoint, with its weights, in eval mode.

    The checkpoint is loaded with ``weights_only=True`` and names its learner by class name
    only. That name is looked up among the learners fedrl_lightning ships and those passed in
    ``learners``: a checkpoint never makes this import a module it names.

    Args:
        path: A round checkpoint (``checkpoints/last.ckpt``, ``round-0012.ckpt``) or an agent's.
        learners: Your own learner classes that the checkpoint may name.

    Returns:
        The module, in eval mode.

    Raises:
        ConfigError: If the file is not a readable checkpoint, names an unknown learner, or
            holds weights that do not fit it.
    """
    checkpoint = load_checkpoint(path)
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
    except (TypeError, RuntimeError) as err:
        reason = " ".join(str(err).split())
        raise ConfigError(f"checkpoint {path}: does not fit {name} ({reason})") from None
    return module.eval()

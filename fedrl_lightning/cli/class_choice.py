"""A class chosen on the command line over a config written for the default class.

``fit --config configs/cartpole.yaml --model PPO``: the config's ``model`` section has no
``class_path``, so its options are REINFORCE's, the default learner's. jsonargparse applies
them to REINFORCE and, when ``--model PPO`` changes the class, keeps those that PPO also
accepts and drops the others (``normalize_returns``). The command line is parsed again with
PPO as the default, which gives PPO its own defaults; :func:`fit_config_sections` makes that
parse read such a section as the first one did, and says which options it leaves out.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import yaml

__all__ = ["fit_config_sections"]

CONFIG_FLAGS = ("--config", "-c")
ABSENT = object()
"""A config without the section."""


def fit_config_sections(args: list[str], key: str, chosen: type) -> tuple[list[str], list[str]]:
    """``args`` with the default class's config sections for ``key`` fitted to ``chosen``.

    A config's ``key`` section without a ``class_path``, given before anything chooses
    ``key``'s class, holds the default class's options. Each such config is replaced by its
    YAML text without the options that ``chosen`` does not accept, as jsonargparse drops them
    when the class changes; the options that ``chosen`` also accepts (``lr``) stay, and later
    options (``--model.lr``) still override them.

    Args:
        args: The command line, with the ``fit`` subcommand.
        key: The option that takes a class (``model``, ``trainer.strategy``).
        chosen: The class the command line chooses for it in the end.

    Returns:
        The command line to parse, and one notice per config of the options it leaves out.
    """
    start = args.index("fit") + 1
    first = next((i for i in range(start, len(args)) if _chooses_class(args, i, key)), None)
    if first is None:  # nothing recognisably chooses the class: leave the command as it is
        return args, []
    accepted = set(inspect.signature(chosen).parameters)
    fitted, notices = list(args), []
    for i in range(start, first):
        path = _config_path(args, i)
        config = _load(path) if path is not None else None
        section = _section(config, key) if isinstance(config, dict) else ABSENT
        if not isinstance(section, dict):
            continue
        init_args = section.get("init_args")
        given = [*(init_args if isinstance(init_args, dict) else {}), *section]
        left_out = [name for name in given if name not in accepted and name != "init_args"]
        if not left_out:
            continue
        assert isinstance(config, dict) and path is not None  # a section came from a read file
        config = copy.deepcopy(config)
        section = _section(config, key)
        for name in left_out:
            section.pop(name, None)
            if isinstance(section.get("init_args"), dict):
                section["init_args"].pop(name, None)
        text = yaml.safe_dump(config, sort_keys=False)
        if args[i] in CONFIG_FLAGS:
            fitted[i + 1] = text
        else:
            fitted[i] = f"--config={text}"
        notices.append(_left_out(path, [f"{key}.{name}" for name in left_out], chosen))
    return fitted, notices


def _chooses_class(args: list[str], i: int, key: str) -> bool:
    """Whether ``args[i]`` may choose ``key``'s class: ``--model``, or a config that does.

    When in doubt (a config that cannot be read, a section that is not a mapping), it may.
    """
    parts = key.split(".")
    options = {"--" + ".".join(parts[:n]) for n in range(1, len(parts) + 1)}
    if args[i].split("=", 1)[0] in options | {f"--{key}.class_path"}:
        return True
    path = _config_path(args, i)
    if path is None:
        return False
    config = _load(path)
    section = _section(config, key) if isinstance(config, dict) else None
    return section is not ABSENT and not (isinstance(section, dict) and "class_path" not in section)


def _config_path(args: list[str], i: int) -> str | None:
    """The config file that ``args[i]`` gives, if any."""
    if args[i] in CONFIG_FLAGS and i + 1 < len(args):
        return args[i + 1]
    if args[i].startswith("--config="):
        return args[i].split("=", 1)[1]
    return None


def _load(path: str) -> Any:
    """The config file's contents; ``None`` if it cannot be read (it is refused elsewhere)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None  # not a file: YAML text already (a resumed run's config)


def _section(config: dict[str, Any], key: str) -> Any:
    """The config's section for the dotted ``key``; ``ABSENT`` if it has none."""
    section: Any = config
    for part in key.split("."):
        if not isinstance(section, dict) or part not in section:
            return ABSENT
        section = section[part]
    return section


def _left_out(path: str, names: list[str], chosen: type) -> str:
    """The notice for a config's options that ``chosen`` does not accept."""
    if len(names) == 1:
        return f"{path}: {names[0]} is not an argument of {chosen.__name__}; it is left out"
    return f"{path}: {', '.join(names)} are not arguments of {chosen.__name__}; they are left out"

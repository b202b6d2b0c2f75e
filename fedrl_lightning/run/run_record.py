"""What a run's folder says, read back: ``metrics.csv``, ``config.yaml`` and ``agents.csv``.

:func:`read_run` turns a run folder into a :class:`RunRecord`, with the per-round numbers as
numpy arrays, the per-agent evaluation returns by agent id, the failed and Byzantine agents
of each round, the resolved config and the agents' table. A file that is missing, empty,
truncated or not what the trainer writes gives a :class:`~fedrl_lightning.errors.ConfigError`
that names it. It draws nothing, so any command can use it.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.run.run_folder import RunFolder

__all__ = ["AGENT_COLUMN", "AGENT_LISTS", "RunRecord", "read_run"]

AGENT_COLUMN = re.compile(r"eval_reward(?:_per_agent/|/agent_)(\d+)")
"""The per-agent evaluation columns of ``metrics.csv``: ``eval_reward_per_agent/K`` (runs of
earlier versions: ``eval_reward/agent_K``)."""
AGENT_LISTS = ("failed_agents", "byzantine_agents")
"""Columns that hold agent ids separated by spaces rather than a number."""
REQUIRED = ("round", "eval_reward")
# Columns the trainer always writes as numbers: a value there that is not one is an error.
NUMERIC = re.compile(r"round|.*_reward.*|num_.*|bytes_.*|episodes|env_steps|round_time")


@dataclass(frozen=True)
class RunRecord:
    """One run, as its folder records it.

    Args:
        path: The run's folder.
        rounds: The round of each row of ``metrics.csv``, in order.
        numbers: Every numeric column of ``metrics.csv``, one value per round; ``NaN`` where a
            row left it empty.
        agent_returns: The evaluation return of each evaluated agent (the
            ``eval_reward_per_agent/K`` columns) by agent id, one value per round.
        failed_agents: The agents whose local fit failed, for each round.
        byzantine_agents: The Byzantine agents that took part, for each round.
        config: The resolved config (``config.yaml``); empty if the folder has none.
        agents: The rows of ``agents.csv`` (each agent's environment parameters and attack);
            empty if the folder has none.
    """

    path: Path
    rounds: np.ndarray
    numbers: dict[str, np.ndarray]
    agent_returns: dict[int, np.ndarray]
    failed_agents: tuple[tuple[int, ...], ...]
    byzantine_agents: tuple[tuple[int, ...], ...]
    config: dict[str, Any] = field(default_factory=dict)
    agents: tuple[dict[str, str], ...] = ()

    def column(self, name: str) -> np.ndarray:
        """The numeric column ``name``, or ``NaN`` for every round if ``metrics.csv`` has none."""
        if name in self.numbers:
            return self.numbers[name]
        return np.full(len(self.rounds), np.nan)

    @property
    def strategy(self) -> str | None:
        """The aggregation strategy's class name (``FedAvg``), from ``config.yaml``."""
        return _class_name(_get(self.config, "trainer", "strategy"))

    @property
    def learner(self) -> str | None:
        """The learner's class name (``PPO``), from ``config.yaml``."""
        return _class_name(self.config.get("model"))

    @property
    def seed(self) -> int | None:
        """The run's ``seed_everything``, from ``config.yaml``."""
        seed = self.config.get("seed_everything")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def read_run(path: str | Path) -> RunRecord:
    """Read the run in folder ``path``.

    Args:
        path: A run folder, such as ``lightning_logs/version_0``.

    Returns:
        The run's record.

    Raises:
        ConfigError: Naming the folder or file, if ``path`` is no run folder, or its
            ``metrics.csv`` is empty, truncated or holds what is not a number, or its
            ``config.yaml`` or ``agents.csv`` cannot be read.
    """
    folder = RunFolder(Path(path))
    if folder.path.is_file():
        raise ConfigError(
            f"{folder.path}: a file; give the run's folder (lightning_logs/version_N)"
        )
    if not folder.path.is_dir():
        raise ConfigError(f"{folder.path}: no such run folder")
    if not folder.metrics.is_file():
        newest = RunFolder.newest(folder.path)
        hint = f"; its newest run is {newest.path}" if newest is not None else ""
        raise ConfigError(f"{folder.path}: not a run folder (it has no metrics.csv){hint}")
    header, rows = _read_csv(folder.metrics)
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ConfigError(f"{folder.metrics}: no {missing[0]} column, not a run's metrics.csv")
    if not rows:
        raise ConfigError(f"{folder.metrics}: no rounds recorded")
    numbers: dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        if name not in AGENT_LISTS:
            values = _numbers(folder.metrics, name, [row[index] for row in rows])
            if values is not None:
                numbers[name] = values
    if np.isnan(numbers["round"]).any():
        raise ConfigError(f"{folder.metrics}: a row without a round")
    lists = {
        name: tuple(
            _agent_list(folder.metrics, name, row[header.index(name)], line)
            for line, row in enumerate(rows, start=2)
        )
        if name in header
        else ((),) * len(rows)
        for name in AGENT_LISTS
    }
    agent_returns = {
        int(match.group(1)): numbers[name]
        for name in header
        if (match := AGENT_COLUMN.fullmatch(name))
    }
    return RunRecord(
        path=folder.path,
        rounds=numbers["round"].astype(np.int64),
        numbers=numbers,
        agent_returns=dict(sorted(agent_returns.items())),
        failed_agents=lists["failed_agents"],
        byzantine_agents=lists["byzantine_agents"],
        config=_read_config(folder.config),
        agents=_read_agents(folder.agents_table),
    )


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of ``path``; every row must have as many fields as the header."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    if not lines or not lines[0]:
        raise ConfigError(f"{path}: empty, no header and no rounds")
    header, rows = lines[0], [row for row in lines[1:] if row]
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ConfigError(
                f"{path} line {line}: {len(row)} fields where the header has {len(header)} "
                "(a truncated or damaged file)"
            )
    return header, rows


def _numbers(path: Path, name: str, values: list[str]) -> np.ndarray | None:
    """Column ``name`` as floats (``NaN`` for empty values), or ``None`` for a text column."""
    parsed = []
    for line, value in enumerate(values, start=2):
        try:
            number = float(value) if value.strip() else math.nan
        except ValueError:
            if NUMERIC.fullmatch(name):
                raise ConfigError(
                    f"{path} line {line}: {name} is {value!r}, not a number"
                ) from None
            return None
        parsed.append(number)
    return np.asarray(parsed, dtype=np.float64)


def _agent_list(path: Path, name: str, value: str, line: int) -> tuple[int, ...]:
    """The agent ids in ``value``, separated by spaces."""
    try:
        return tuple(int(agent) for agent in value.split())
    except ValueError:
        raise ConfigError(
            f"{path} line {line}: {name} is {value!r}, not agent ids separated by spaces"
        ) from None


def _read_config(path: Path) -> dict[str, Any]:
    """The resolved config in ``path``, or an empty one if there is no such file."""
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot be read ({' '.join(str(err).split())})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a run's config (a {type(config).__name__}, not a mapping)")
    return config


def _read_agents(path: Path) -> tuple[dict[str, str], ...]:
    """The rows of ``agents.csv``, or none if there is no such file."""
    if not path.is_file():
        return ()
    header, rows = _read_csv(path)
    return tuple(dict(zip(header, row, strict=True)) for row in rows)


def _get(config: dict[str, Any], *keys: str) -> Any:
    """``config[keys[0]][keys[1]]...``, or ``None`` where a level is missing."""
    value: Any = config
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _class_name(spec: Any) -> str | None:
    """``FedAvg`` for ``FedAvg``, ``fedrl_lightning.FedAvg`` or ``{class_path: ...FedAvg}``."""
    if isinstance(spec, dict):
        spec = spec.get("class_path")
    return str(spec).rsplit(".", 1)[-1] if isinstance(spec, str) and spec else None

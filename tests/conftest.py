"""Shared helpers and fixtures of the tests.

The xdist controller loads this file too, but runs no test: so that it does not spend seconds
on torch and Lightning before starting the workers, the heavy modules are imported by
:func:`pytest_configure` in the processes that run tests (as early as before: ahead of
collection), and the names from ``in_process`` resolve on first use (``__getattr__``).
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import lightning as L
    import torch

    from fedrl_lightning import FederatedTrainer

TESTS = Path(__file__).parent
IN_PROCESS = {"SHARED_RAY", "CliProcess", "cli_env", "restored_process_state", "run_in_process"}
"""Names the tests import from here that live in ``in_process``."""


def __getattr__(name: str) -> Any:
    if name in IN_PROCESS:
        return getattr(importlib.import_module("in_process"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_configure(config: pytest.Config) -> None:
    """Import the command and the heavy modules, unless this is the xdist controller."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    importlib.import_module("in_process")


TINY_CONFIG = TESTS / "configs" / "tiny.yaml"
TINY_PPO_CONFIG = TESTS / "configs" / "tiny_ppo.yaml"  # PPO, normalisation, linear lr
TINY_CURIOSITY_CONFIG = TESTS / "configs" / "tiny_curiosity.yaml"  # PPO + RND, coverage
TINY_CALLBACKS_CONFIG = TESTS / "configs" / "tiny_callbacks.yaml"  # every shipped callback
TINY_PERSONAL_CONFIG = TESTS / "configs" / "tiny_personal.yaml"  # personal heads, two signs
TINY_TASKS_CONFIG = TESTS / "configs" / "tiny_tasks.yaml"  # two tasks, task-scoped heads
TINY_IFCA_CONFIG = TESTS / "configs" / "tiny_ifca.yaml"  # two clusters (IFCA), two signs
TINY_SHARING_CONFIG = TESTS / "configs" / "tiny_sharing.yaml"  # shared trajectory replay
TINY_GRADIENT_CONFIG = TESTS / "configs" / "tiny_gradient.yaml"  # gradient mode, an attacker
TINY_DISTILL_CONFIG = TESTS / "configs" / "tiny_distill.yaml"  # distillation, own models
TINY_DQN_CONFIG = TESTS / "configs" / "tiny_dqn.yaml"  # DQN, each agent's replay across rounds
TINY_SAC_CONFIG = TESTS / "configs" / "tiny_sac.yaml"  # SAC on Pendulum: targets, temperature
TINY_TD3_CONFIG = TESTS / "configs" / "tiny_td3.yaml"  # TD3 on Pendulum: delayed actor, targets


def assert_same_memory(expected_run: Path, actual_run: Path) -> None:
    """The two runs' agents' memory files (``memory/``) hold the same rounds, tensors and values."""
    import torch

    folder = Path("lightning_logs/version_0/memory")
    names = sorted(p.name for p in (expected_run / folder).iterdir())
    assert names and sorted(p.name for p in (actual_run / folder).iterdir()) == names

    def same(expected: object, actual: object, where: str) -> None:
        if isinstance(expected, torch.Tensor):
            assert isinstance(actual, torch.Tensor) and torch.equal(actual, expected), where
        elif isinstance(expected, dict):
            assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
            for key, value in expected.items():
                same(value, actual[key], f"{where}.{key}")
        else:
            assert actual == expected, where

    for name in names:
        same(
            torch.load(expected_run / folder / name, weights_only=True),
            torch.load(actual_run / folder / name, weights_only=True),
            name,
        )


def cli_command(*args: str) -> list[str]:
    """The command line of ``python -m fedrl_lightning``, for the tests that need a process
    started as a user starts it: signals, a pipe's reader going away, a node lost mid-run.
    SIGKILL's tests use :class:`CliProcess`, a process of its own without the imports."""
    return [sys.executable, "-m", "fedrl_lightning", *args]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m fedrl_lightning`` as a user would, in ``cwd``, in this process.

    ``env`` adds environment variables. The exit code, stdout and stderr are those a
    subprocess would give (tests/in_process.py).
    """
    from in_process import run_in_process

    return run_in_process(*args, cwd=cwd, env=env)


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Each test leaves the working folder, environment, random states, signal handlers,
    logging and torch's settings as it found them (in-process commands change some)."""
    from in_process import restored_process_state

    with restored_process_state():
        yield


@pytest.fixture(scope="session")
def _shared_ray_instance() -> Iterator[None]:
    """Starts the test process's shared Ray instance (before any test's own state is taken,
    which would drop the logging handlers it adds), and stops it at the end of the session."""
    from in_process import SHARED_RAY

    SHARED_RAY.start()
    yield
    SHARED_RAY.stop()


def _in_ray_group(item: pytest.Item | None) -> bool:
    return item is not None and any(
        mark.args[:1] == ("ray",) for mark in item.iter_markers("xdist_group")
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last of a run of Ray tests (xdist runs the group in one go), stop the shared
    Ray: idle, its processes would still take about a twentieth of a core from the tests
    after it. A later test that asks for it starts it again."""
    yield
    if _in_ray_group(item) and not _in_ray_group(nextitem) and "in_process" in sys.modules:
        from in_process import SHARED_RAY

        SHARED_RAY.stop()


@pytest.fixture
def shared_ray(_shared_ray_instance: None) -> Iterator[None]:
    """The test's Ray runs, in this process and through ``run_cli``, join one Ray instance.

    It is started at the first test that asks for it and kept for the next (its workers stay
    warm), or started again where a test in between stopped it; see ``in_process.SharedRay``.
    """
    from in_process import SHARED_RAY

    SHARED_RAY.start()
    SHARED_RAY.joined = True
    try:
        yield
    finally:
        SHARED_RAY.joined = False


@pytest.fixture
def no_ray() -> None:
    """No Ray initialised in this process: the test's commands start their own (or join a
    cluster by its address)."""
    from in_process import SHARED_RAY

    SHARED_RAY.stop()


def run_main(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``main(args)`` in ``cwd`` with stdout and stderr redirected: code, stdout, stderr.

    Lighter than :func:`run_cli` (no file-descriptor capture): for commands whose output is
    Python's own prints, such as one-line refusals.
    """
    from fedrl_lightning.cli.app import main

    monkeypatch.chdir(cwd)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(args)
    return code, stdout.getvalue(), stderr.getvalue()


def metrics_without_timings(cwd: Path, run: str = "lightning_logs/version_0") -> list[dict]:
    """The rows of a run's ``metrics.csv`` without ``round_time``, the one column that varies."""
    with open(cwd / run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        del row["round_time"]
    return rows


def fit_cartpole_federation(
    build: object,
    num_rounds: int = 10,
    num_agents: int = 4,
    episodes_per_round: int = 10,
    eval_episodes: int = 5,
    **trainer_options: object,
) -> tuple[list[dict], FederatedTrainer]:
    """A CartPole federation, 2 agents a round, seed 0: ten rounds of 4 agents by default.

    ``build(population)`` makes the learner, under ``torch.manual_seed(0)``.

    Returns:
        The metrics, and the trainer (its ``run_dir`` holds the run).
    """
    import torch

    from fedrl_lightning import AgentPopulation, FederatedTrainer

    population = AgentPopulation(env_id="CartPole-v1", num_agents=num_agents)
    trainer = FederatedTrainer(
        num_rounds=num_rounds,
        agents_per_round=2,
        episodes_per_round=episodes_per_round,
        eval_episodes=eval_episodes,
        default_root_dir=tempfile.mkdtemp(),
        enable_progress_bar=False,
        seed=0,
        **trainer_options,
    )
    torch.manual_seed(0)
    return trainer.fit(build(population), population), trainer


def fit_locally(module: L.LightningModule, dataloader: object) -> L.Trainer:
    """Fit ``module`` for one epoch with a quiet, bare Trainer, as an agent's local fit does."""
    import lightning as L

    from fedrl_lightning.run.console import quiet_lightning

    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with quiet_lightning(verbose=False):
        trainer.fit(module, dataloader)
    return trainer


TRAINER_KWARGS = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def fit_one_agent(
    tmp_path: Path,
    global_state: dict[str, torch.Tensor],
    agent_id: int = 2,
    name: str = "agent.ckpt",
    byzantine: dict | None = None,
) -> Path:
    """Fit agent ``agent_id`` of a 4-agent Simple population for 3 episodes, as round 3 does."""
    from fedrl_lightning import AgentPopulation, Reinforce
    from fedrl_lightning.federation.local_fit import LocalFit, fit_agent
    from fedrl_lightning.run.console import quiet_lightning

    task = LocalFit(
        agent_id=agent_id,
        round_idx=3,
        run_seed=7,
        module_class=Reinforce,
        model_hparams={"hidden_dim": 8, "lr": 0.01},
        global_state=global_state,
        num_episodes=3,
        checkpoint_path=tmp_path / name,
        trainer_kwargs=TRAINER_KWARGS,
    )
    with quiet_lightning(verbose=False):
        return fit_agent(task, AgentPopulation(num_agents=4, byzantine=byzantine))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny fit through the real command line, shared by the tests that inspect it."""
    cwd = tmp_path_factory.mktemp("tiny")
    result = run_cli("fit", "--config", str(TINY_CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd, result


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The type check goes first: from a clean clone it is the longest single test (mypy
    checks torch and Lightning too, about 45 s). xdist hands out the groups, then the other
    tests in this order, so it starts early, instead of running alone at the end while the
    other worker has nothing left.

    On an xdist worker under ``--dist loadgroup``, every ``xdist_group`` test must carry
    its group in its node id, which is how xdist keeps a group on one worker (the Ray tests
    share one Ray instance, one at a time): a pytest whose node ids xdist cannot extend
    would spread them silently."""
    items.sort(key=lambda item: item.path.name != "test_typecheck.py")  # stable: the rest keep
    if not getattr(config.option, "loadgroup", False):
        return
    ungrouped = [
        i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid
    ]
    if ungrouped:
        raise pytest.UsageError(
            f"pytest-xdist could not put {ungrouped[0]} in its xdist_group (this pytest "
            "keeps node ids apart from xdist): install the versions in constraints.txt"
        )

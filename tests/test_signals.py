"""SIGINT and SIGTERM stop a run within seconds, with one line, and leave it resumable.

The runs use ``faults:Slow-v0`` and ``faults:LongEpisode-v0`` (tests/faults.py), whose steps
hang or crawl on cue, so a signal reaches a run at a known point of a local fit.
"""

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG, cli_command, cli_env, fit_one_agent, run_cli

from fedrl_lightning import Reinforce
from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.run.interrupts import RunInterrupted, deferred_signals, stop_on_signals

RUN = Path("lightning_logs/version_0")
SLOW = ["fit", "--config", str(TINY_CONFIG), "--data.env_id", "faults:Slow-v0"]
STOP_WITHIN = 5.0  # seconds from the signal to the end of the process
RAY_STOP_WITHIN = 10.0  # ray.shutdown stops Ray's processes gracefully: 1-2 s, more when busy
LINE = "interrupted during round {}; resume with --ckpt_path last\n"


def start(args: list[str], cwd: Path, **faults: Path | str) -> subprocess.Popen:
    """Start the command line in its own process group, as a shell starts a job."""
    env = {**cli_env(), **{name: str(value) for name, value in faults.items()}}
    return subprocess.Popen(
        cli_command(*args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {path.name} appeared: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.005)


def stop(process: subprocess.Popen, signum: int, whole_group: bool = False) -> tuple[float, str]:
    """Send ``signum`` (to the process group, as Ctrl-C does); the seconds to exit, and stderr."""
    sent = time.monotonic()
    if whole_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"signal {signum} did not stop the run within 60 s")
    return time.monotonic() - sent, stderr


def assert_nothing_half_written(run: Path, completed_rounds: int) -> None:
    assert not list(run.glob("**/.*.tmp"))
    assert not (run / "agents").exists()  # its unfinished round's checkpoints removed
    rounds = {f"round-{r:04d}.ckpt" for r in range(1, completed_rounds + 1)}
    saved = {"last.ckpt", "best.ckpt"} if completed_rounds else set()
    assert {p.name for p in (run / "checkpoints").iterdir()} == rounds | saved


def round_state(cwd: Path) -> dict:
    """``last.ckpt``'s weights and round state, without timings and the config's text."""
    checkpoint = torch.load(cwd / RUN / "checkpoints" / "last.ckpt", weights_only=True)
    state = dict(checkpoint["fedrl"])
    del state["config"]
    state["history"] = [
        {k: v for k, v in row.items() if k != "round_time"} for row in state["history"]
    ]
    return {
        "weights": checkpoint["state_dict"],
        "hyper_parameters": checkpoint["hyper_parameters"],
        **state,
    }


def metrics_without_timings(cwd: Path) -> list[list[str]]:
    lines = (cwd / RUN / "metrics.csv").read_text().splitlines()
    timing = lines[0].split(",").index("round_time")
    return [line.split(",")[:timing] + line.split(",")[timing + 1 :] for line in lines]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The slow config's run, never stopped (and not slowed down)."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*SLOW, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
@pytest.mark.slow
def test_a_signal_in_a_local_fit_stops_the_run_resumably(
    tmp_path, uninterrupted, signum, exit_code
):
    # Round 2's first agent saves its checkpoint; the second agent's first step then hangs.
    first, second = sample_agents(3, 2, 7, 2)  # tiny.yaml: 3 agents, 2 a round, seed 7
    first_saved = tmp_path / RUN / "agents" / f"round-0002-agent-{first:04d}.ckpt"
    stepped = tmp_path / "stepped"
    process = start(SLOW, tmp_path, FAULTS_STALL_AFTER=first_saved, FAULTS_STEPPED=stepped)
    wait_for(first_saved, process)
    stepped.unlink()
    wait_for(stepped, process)  # agent `second` is inside a step of its local fit

    seconds, stderr = stop(process, signum, whole_group=signum == signal.SIGINT)

    assert seconds < STOP_WITHIN
    assert stderr == LINE.format(2)
    assert process.returncode == exit_code
    assert_nothing_half_written(tmp_path / RUN, completed_rounds=1)
    assert len(metrics_without_timings(tmp_path)) == 1 + 1  # the header and round 1

    result = run_cli("fit", "--ckpt_path", "last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resumed after round 1" in result.stdout
    assert metrics_without_timings(tmp_path) == metrics_without_timings(uninterrupted)
    resumed, whole = round_state(tmp_path), round_state(uninterrupted)
    assert resumed.keys() == whole.keys()
    for key in resumed["weights"]:
        assert torch.equal(resumed["weights"][key], whole["weights"][key]), key
    for key in resumed.keys() - {"weights"}:
        assert resumed[key] == whole[key], key
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0"]


@pytest.mark.slow
def test_sigterm_stops_a_run_inside_an_endless_episode(tmp_path):
    stepped = tmp_path / "stepped"
    args = ["fit", "--config", str(TINY_CONFIG), "--data.env_id", "faults:LongEpisode-v0"]
    process = start(args, tmp_path, FAULTS_STEP_DELAY="0.001", FAULTS_STEPPED=stepped)
    wait_for(stepped, process)
    time.sleep(0.2)  # a few hundred steps into an episode of 10**9

    seconds, stderr = stop(process, signal.SIGTERM)

    assert seconds < STOP_WITHIN
    assert stderr == LINE.format(1)
    assert process.returncode == 143
    assert_nothing_half_written(tmp_path / RUN, completed_rounds=0)


def process_tree(root: int) -> dict[tuple[int, str], str]:
    """``root``'s descendants, by (pid, start time), with their command lines."""
    parents, processes = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            )
        except OSError:  # a process that just ended
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (command)"
        pid = int(entry.name)
        parents[pid], processes[pid] = int(fields[1]), ((pid, fields[19]), command)
    tree, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid in [p for p, pp in parents.items() if pp == parent]:
            key, command = processes[pid]
            tree[key] = command
            frontier.append(pid)
    return tree


def alive(process: tuple[int, str]) -> bool:
    pid, started = process
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.xdist_group("ray")  # one Ray at a time
@pytest.mark.slow
def test_sigterm_stops_a_ray_run_and_its_workers(tmp_path):
    stall, stepped = tmp_path / "stall", tmp_path / "stepped"
    stall.touch()  # every step hangs, so both workers are inside a local fit of round 1
    ray = ["--trainer.executor", "ray", "--trainer.num_workers", "2"]
    process = start([*SLOW, *ray], tmp_path, FAULTS_STALL_AFTER=stall, FAULTS_STEPPED=stepped)
    wait_for(stepped, process)
    ray_processes = process_tree(process.pid)
    assert sum(command.startswith("ray::fit_remotely") for command in ray_processes.values())

    seconds, stderr = stop(process, signal.SIGTERM)

    assert seconds < RAY_STOP_WITHIN
    assert stderr == LINE.format(1)
    assert process.returncode == 143
    assert_nothing_half_written(tmp_path / RUN, completed_rounds=0)
    deadline = time.monotonic() + 10
    while any(map(alive, ray_processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [ray_processes[p] for p in ray_processes if alive(p)] == []


def test_signals_in_process_raise_once_wait_for_deferred_work_and_are_restored(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(RunInterrupted) as stopped, stop_on_signals():
        with deferred_signals():
            signal.raise_signal(signal.SIGTERM)
            finished = True  # the deferred block runs to its end
        pytest.fail("the signal was not raised at the end of the deferred block")
    assert finished and stopped.value.signum == signal.SIGTERM
    assert stopped.value.exit_code == 143 and str(stopped.value) == "interrupted"

    with pytest.raises(RunInterrupted) as stopped, stop_on_signals():
        try:
            with stop_on_signals():  # nested blocks share one handler
                signal.raise_signal(signal.SIGINT)
        finally:
            signal.raise_signal(signal.SIGINT)  # a second signal, during cleanup: ignored
            signal.raise_signal(signal.SIGTERM)
    assert stopped.value.signum == signal.SIGINT and stopped.value.exit_code == 130

    with stop_on_signals():  # Lightning replaces SIGTERM's handler during a fit, then restores it
        handler = signal.getsignal(signal.SIGTERM)
        fit_one_agent(tmp_path, Reinforce(hidden_dim=8).state_dict())
        assert signal.getsignal(signal.SIGTERM) is handler
    assert {s: signal.getsignal(s) for s in before} == before

"""Runs on a real multi-node Ray cluster, on this machine, through the command line.

The cluster is Ray's own ``ray.cluster_utils.Cluster``, which starts the processes that
``ray start --head`` and ``ray start --address`` start: a head node with no CPUs, so that every
fit runs on a worker node, and worker nodes of one CPU each, so that a round's fits spread over
them. Its sessions, sockets and address file live in a folder of its own (``RAY_TMPDIR``), apart
from any other Ray on this machine, and token authentication is off on the nodes and the
drivers alike (they must agree; see docs/scaling.md). ``ray stop`` is never used: it would stop
every Ray of this user.

The runs use ``faults:Slow-v0``, SimpleEnv's trajectories, whose workers' environments (set
when the nodes start, as ``ray start`` passes its own on) record which node each fit ran on
(``FAULTS_FITS``) and hang every step while a file exists (``FAULTS_STALL_AFTER``).
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import (
    SHARED_RAY,
    TESTS,
    TINY_CONFIG,
    cli_command,
    cli_env,
    metrics_without_timings,
    run_cli,
)

from fedrl_lightning.federation.sampling import sample_agents
from fedrl_lightning.seeding import Stream, derive_seed

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

# Ray starts processes of its own: one Ray test at a time (xdist runs a group on one worker).
# Each starts Ray, or a fit on it: slow.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

RUN = Path("lightning_logs/version_0")
SLOW = ["fit", "--config", str(TINY_CONFIG), "--data.env_id", "faults:Slow-v0"]
SEED, NUM_AGENTS, AGENTS_PER_ROUND, NUM_ROUNDS = 7, 3, 2, 3  # tiny.yaml's
WORKER_NODES = 2


@dataclass
class RayCluster:
    """The module's cluster, and the folders through which its fits report.

    Attributes:
        cluster: Ray's cluster: ``address`` is the head's, ``host:port``.
        fits: Where each fit writes, named by its environment's seed, the node it ran on.
        stall: While this file exists, every step of every fit on the cluster hangs.
    """

    cluster: Cluster
    fits: Path
    stall: Path

    def add_worker(self) -> "ray._private.node.Node":
        """Start a worker node of one CPU whose fits report through ``fits``."""
        with pytest.MonkeyPatch.context() as env:
            env.setenv("FAULTS_FITS", str(self.fits))
            env.setenv("FAULTS_STALL_AFTER", str(self.stall))
            node = self.cluster.add_node(num_cpus=1)
        self.cluster.wait_for_nodes()
        return node

    def workers(self) -> set[str]:
        """The ids of the worker nodes."""
        return {node.node_id for node in self.cluster.worker_nodes}

    def take_fits(self) -> dict[int, str]:
        """The node of every fit recorded since the last call, by seed; forget them."""
        fits = {}
        for path in self.fits.iterdir():
            if not path.suffix:
                fits[int(path.name)] = path.read_text().split()[0]
            path.unlink()
        return fits


def descendants(root: int) -> set[tuple[int, str]]:
    """``root``'s living descendants, as (pid, start time), so a reused pid is not mistaken."""
    parents, started = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # one that just ended
            continue
        if fields[0] != "Z":
            parents[int(entry.name)], started[int(entry.name)] = int(fields[1]), fields[19]
    tree, frontier = set(), [root]
    while frontier:
        parent = frontier.pop()
        for pid in [p for p, pp in parents.items() if pp == parent]:
            tree.add((pid, started[pid]))
            frontier.append(pid)
    return tree


def alive(process: tuple[int, str]) -> bool:
    """Whether ``process`` still runs, whoever its parent now is."""
    pid, started = process
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def still_alive(processes: set[tuple[int, str]], within: float) -> set[tuple[int, str]]:
    """Those of ``processes`` that still run after up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while (left := set(filter(alive, processes))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """A head with no CPUs and two worker nodes of one CPU each; no process left after it.

    Processes this one started before the cluster (a forkserver, say) are not the cluster's.
    """
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc")
    SHARED_RAY.stop()  # the runs join the cluster, or start a Ray of their own
    before = descendants(os.getpid())
    folder = Path(tempfile.mkdtemp(prefix="fedrl-ray-", dir="/tmp"))  # short socket paths
    (folder / "fits").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", str(folder))
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.delenv("RAY_ADDRESS", raising=False)
        env.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
        head = {"num_cpus": 0, "include_dashboard": False}
        running = RayCluster(
            Cluster(initialize_head=True, head_node_args=head),
            folder / "fits",
            folder / "stall",
        )
        try:
            for _ in range(WORKER_NODES):
                running.add_worker()
            yield running
        finally:
            running.stall.unlink(missing_ok=True)
            processes = descendants(os.getpid()) - before
            running.cluster.shutdown()
            left = still_alive(processes, within=10.0)
            shutil.rmtree(folder)  # the sessions' logs and sockets
    assert left == set(), "Ray processes outlived the cluster"


def seeds_of_fits(rounds: range, agents_per_round: int) -> dict[int, tuple[int, int]]:
    """(round, agent) of every local fit, by the seed of its environment's first reset."""
    return {
        derive_seed(SEED, r, agent, Stream.ENV): (r, agent)
        for r in rounds
        for agent in sample_agents(NUM_AGENTS, agents_per_round, SEED, r)
    }


def weights(cwd: Path) -> dict[str, torch.Tensor]:
    return torch.load(cwd / RUN / "checkpoints/last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("sequential")
    result = run_cli(*SLOW, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd


def test_a_run_joining_the_cluster_gives_the_sequential_run_s_weights_and_metrics(
    tmp_path, cluster, sequential
):
    """``--trainer.ray_address host:port``: the same run, its fits spread over both nodes.

    Not through Ray Client (``ray://``): its proxy sometimes fails to start a session
    (ray-project/ray#63202), which would make this test flaky.
    """
    cluster.take_fits()
    address = cluster.cluster.address
    result = run_cli(
        *SLOW, "--trainer.executor", "ray", "--trainer.ray_address", address, cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no Ray or Lightning chatter
    assert metrics_without_timings(tmp_path) == metrics_without_timings(sequential)
    on_cluster, alone = weights(tmp_path), weights(sequential)
    assert on_cluster.keys() == alone.keys()
    for key, value in alone.items():
        assert torch.equal(on_cluster[key], value), key
    fits = cluster.take_fits()  # every fit ran once, on the worker nodes, and on both
    assert fits.keys() == seeds_of_fits(range(1, NUM_ROUNDS + 1), AGENTS_PER_ROUND).keys()
    assert set(fits.values()) == cluster.workers()


def test_a_run_without_ray_address_on_a_cluster_node_starts_its_own_ray(
    tmp_path, cluster, sequential
):
    """Neither the cluster's address file (which ``ray start`` writes) nor ``RAY_ADDRESS``
    makes a run without ``ray_address`` join the cluster: it starts ``num_workers`` CPUs of
    its own, as documented."""
    own = tmp_path / "fits"
    own.mkdir()
    cluster.take_fits()
    env = {"RAY_ADDRESS": cluster.cluster.address, "FAULTS_FITS": str(own)}
    ray_args = ["--trainer.executor", "ray", "--trainer.num_workers", "1"]
    result = run_cli(*SLOW, *ray_args, cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert metrics_without_timings(tmp_path) == metrics_without_timings(sequential)
    assert cluster.take_fits() == {}
    recorded = {int(p.name): p.read_text().split()[0] for p in own.iterdir() if not p.suffix}
    fits = seeds_of_fits(range(1, NUM_ROUNDS + 1), AGENTS_PER_ROUND)
    nodes = {recorded[seed] for seed in fits}  # not the driver's resets ("none" before Ray)
    assert len(nodes) == 1 and nodes.isdisjoint(cluster.workers() | {"none"})


def wait_for_fits(
    cluster: RayCluster, count: int, process: subprocess.Popen, timeout: float = 120.0
) -> dict[int, str]:
    """Wait until ``count`` fits have started on the cluster; their nodes, by seed."""
    deadline = time.monotonic() + timeout
    while len(started := [p for p in cluster.fits.iterdir() if not p.suffix]) < count:
        if process.poll() is not None:
            pytest.fail(f"the run ended before {count} fits started: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{len(started)} of {count} fits started within {timeout} s")
        time.sleep(0.05)
    return {int(path.name): path.read_text().split()[0] for path in started}


def test_losing_a_node_mid_run_fails_only_the_fits_that_were_on_it(tmp_path, cluster):
    """Round 1's three fits run one a node, all hung; one node is killed as a machine dies.

    Only its fit fails, listed in round 1's ``failed_agents``; it is not rerun on another node
    (Ray would, by default). The round goes on with the other two, and the run finishes on the
    two nodes left. The run joins with ``--trainer.ray_address auto``, as on a head node.
    """
    doomed = cluster.add_worker()  # the cluster's own two nodes stay for other tests
    cluster.take_fits()
    cluster.stall.touch()
    args = [*SLOW, "--trainer.agents_per_round", "3", "--trainer.executor", "ray"]
    process = subprocess.Popen(
        cli_command(*args, "--trainer.ray_address", "auto"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = wait_for_fits(cluster, 3, process)
        assert sorted(running.values()) == sorted(cluster.workers())  # one fit a node
        cluster.cluster.remove_node(doomed, allow_graceful=False)
    finally:
        cluster.stall.unlink(missing_ok=True)
        if doomed in cluster.cluster.worker_nodes:  # the test failed before killing it
            cluster.cluster.remove_node(doomed)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"the run did not finish: {process.communicate()}")

    assert process.returncode == 0, stderr
    fits = seeds_of_fits(range(1, NUM_ROUNDS + 1), 3)
    (lost,) = [fits[seed] for seed, node in running.items() if node == doomed.node_id]
    rows = metrics_without_timings(tmp_path)
    assert [row["failed_agents"] for row in rows] == [str(lost[1]), "", ""]
    assert [row["episodes"] for row in rows] == ["4", "10", "16"]  # 2 + 3 + 3 fits of 2
    recorded = cluster.take_fits()
    assert recorded.keys() == fits.keys()
    lost_seed = next(seed for seed, fit in fits.items() if fit == lost)
    assert recorded.pop(lost_seed) == doomed.node_id  # not rerun elsewhere
    assert set(recorded.values()) == cluster.workers()

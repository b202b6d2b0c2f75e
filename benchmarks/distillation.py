"""Policy distillation (FedHPD) against no federation, and its traffic against weights.

Usage::

    python benchmarks/distillation.py [--seeds 42 43 44] [--episodes 2000] \
        [--modes distill none] [--root DIR] [--eval_episodes 20]
    python benchmarks/distillation.py --traffic

Each mode fits ``configs/cartpole_distill_fedhpd.yaml`` (10 REINFORCE agents, hidden sizes 32,
64 and 128, learning rates 1e-3 .. 1e-2, every agent sampled every round) for ``--episodes``
episodes per agent through the real command line: ``distill`` as the config says
(``kl_coef`` 100), ``none`` with ``kl_coef`` 0, which trains the same agents from the same
streams, each on its own (no federation); ``sign_flip`` and ``random_noise`` (run only when
named) make 3 of the 10 agents Byzantine, attacking the distribution they send, and
``sign_flip_median`` and ``random_noise_median`` do the same with the consensus the
coordinate-wise median (``consensus: strategy``, ``FedMedian``). For each run
it prints the issue's metric, the mean over agents of their last 100 training episodes'
returns (every agent trains 10 episodes every round, so that is the last 10 rounds'
``train_reward``), and the mean over agents of their own policies (from ``last.ckpt``,
``load_module(last, agent=k)``; over all agents, the worst, and the honest ones) and of the
FedDF student on ``--eval_episodes`` fresh episodes each. Anchors: FedHPD 455.5 (distilling
every 5 episodes), 477.3 (every 2); no federation 369.6.

``--runs RUN ...`` prints the same for finished run folders, without fitting.

``--traffic`` runs 2 rounds of the config with distillation, and 2 of plain FedAvg on the
config's 64-unit policy with every agent alike, and prints the bytes each agent is sent and
sends back per round, as ``metrics.csv`` counts them (what is serialized).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
from fresh_evaluation import run_population
from machine import describe_machine
from runs import fit_config

from fedrl_lightning import load_module
from fedrl_lightning.rollouts.evaluation import evaluate_agents

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cartpole_distill_fedhpd.yaml"
ROBUST = ["--trainer.server.consensus=strategy", "--trainer.strategy=FedMedian"]
MODES = {
    "distill": [],
    "none": ["--trainer.server.kl_coef=0.0"],
    # 3 of the 10 agents Byzantine, their attack on the distribution they send
    "sign_flip": ["--data.byzantine={agents: 3, attack: sign_flip}"],
    "random_noise": ["--data.byzantine={agents: 3, attack: random_noise}"],
    # the same, the consensus the coordinate-wise median of the distributions
    "sign_flip_median": [
        "--data.byzantine={agents: 3, attack: sign_flip}",
        *ROBUST,
    ],
    "random_noise_median": [
        "--data.byzantine={agents: 3, attack: random_noise}",
        *ROBUST,
    ],
}
DEFAULT_MODES = ["distill", "none"]


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def learning(mode: str, seed: int, episodes: int, root: Path, eval_episodes: int) -> dict:
    rounds = episodes // 10
    run, seconds = fit_config(
        CONFIG, seed, root / f"{mode}-{seed}", f"--trainer.num_rounds={rounds}", *MODES[mode]
    )
    return summary(run, eval_episodes) | {"seconds": seconds}


def summary(run: Path, eval_episodes: int) -> dict:
    """A finished run's last-100 returns and its policies' returns on fresh episodes."""
    rows = metrics(run)
    last100 = float(np.mean([float(r["train_reward"]) for r in rows[-10:]]))
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    agents = list(range(population.num_agents))
    own = evaluate_agents(
        lambda a: load_module(last, agent=a).policy, population, agents, eval_episodes, 0
    )
    student = evaluate_agents(load_module(last).policy, population, agents, eval_episodes, 0)
    return {
        "last100": last100,
        "own": float(np.mean([e.mean for e in own])),
        "own_worst": float(min(e.mean for e in own)),
        "own_honest": float(
            np.mean(
                [
                    e.mean
                    for a, e in zip(agents, own, strict=True)
                    if a not in population.byzantine.agents
                ]
            )
        ),
        "student": float(np.mean([e.mean for e in student])),
        "env_steps": int(rows[-1]["env_steps"]),
        "episodes_per_agent": int(rows[-1]["episodes"]) // population.num_agents,
    }


def traffic(root: Path) -> None:
    weights = [
        "--trainer.server=null",
        "--data.model_heterogeneity=null",
        "--trainer.strategy=FedAvg",
    ]
    for name, overrides in (("distillation", []), ("weights (FedAvg)", weights)):
        run, _ = fit_config(
            CONFIG, 42, root / name.split()[0], "--trainer.num_rounds=2", *overrides
        )
        for row in metrics(run):
            agents = 10
            print(
                f"{name:18s} round {row['round']}: sent {int(row['bytes_sent']) / agents:8.0f} B, "
                f"received {int(row['bytes_received']) / agents:8.0f} B per agent"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--modes", nargs="+", default=DEFAULT_MODES, choices=list(MODES))
    parser.add_argument("--eval_episodes", type=int, default=20)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--traffic", action="store_true")
    parser.add_argument("--runs", type=Path, nargs="+", default=[], help="summarize these runs")
    args = parser.parse_args()
    print(f"Machine: {describe_machine()}")
    for run in args.runs:  # finished runs (such as a kl_coef tried by hand): no fit
        result = summary(run, args.eval_episodes)
        print(
            f"{run}: {result['episodes_per_agent']} episodes per agent, last-100 "
            f"{result['last100']:6.1f}, own policies {result['own']:6.1f} (worst "
            f"{result['own_worst']:6.1f}), student {result['student']:6.1f} on fresh episodes"
        )
    if args.runs:
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="distillation-"))
    if args.traffic:
        traffic(root)
        return
    for mode in args.modes:
        results = []
        for seed in args.seeds:
            result = learning(mode, seed, args.episodes, root, args.eval_episodes)
            results.append(result)
            print(
                f"{mode:8s} seed {seed}: last-100 {result['last100']:6.1f}, own policies "
                f"{result['own']:6.1f} (worst {result['own_worst']:6.1f}, honest agents "
                f"{result['own_honest']:6.1f}), student "
                f"{result['student']:6.1f} on fresh episodes; {result['env_steps']:,} env "
                f"steps, {result['seconds']:.0f} s",
                flush=True,
            )
        keys = ("last100", "own", "own_honest", "student")
        means = {k: np.mean([r[k] for r in results]) for k in keys}
        print(
            f"{mode:8s} mean of {len(results)} seeds, {args.episodes} episodes per agent: "
            f"last-100 {means['last100']:.1f}, own policies {means['own']:.1f} (honest agents "
            f"{means['own_honest']:.1f}), student {means['student']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

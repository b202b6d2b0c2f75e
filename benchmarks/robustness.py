"""Every strategy, clean and with 3 of 10 agents attacking: final return on Simple and CartPole.

Usage::

    python benchmarks/robustness.py [--envs simple cartpole_hetero] [--strategies FedAvg ...]
                                    [--jobs 2] [--results robustness.jsonl]

Each cell fits a shipped config through the real command line with ``--trainer.strategy``
and ``--data.byzantine`` set, for seeds 42, 43 and 44. The cell's figure is the final global
policy (``last.ckpt``) evaluated on 20 fresh episodes per agent, all 10 agents, with seeds the
run never used. The runs themselves evaluate on one episode per agent per round, which only
saves time: evaluation does not touch training. Finished runs are appended to ``--results``,
so an interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from machine import describe_machine
from runs import fit_config

from fedrl_lightning import AgentPopulation, Reinforce
from fedrl_lightning.rollouts.evaluation import evaluate_policy

CONFIGS = {
    "simple": Path("configs/default.yaml"),
    "cartpole_hetero": Path("configs/cartpole_hetero.yaml"),
}
STRATEGIES = {
    "FedAvg": {},
    "FedMedian": {},
    "FedTrimmedAvg": {"beta": 0.2},
    "Krum": {"num_byzantine": 1},
    "MultiKrum": {"num_byzantine": 1},
    "RewardWeighted": {},
    "FedProx": {"mu": 0.01},
    "FedAvgM": {"server_lr": 1.0, "momentum": 0.9},
    "FedAdagrad": {},
    "FedAdam": {},
    "FedYogi": {},
    "TrustRegion": {},
}
ATTACKS = ("clean", "sign_flip", "random_noise")
SEEDS = (42, 43, 44)
NUM_BYZANTINE = 3
EPISODES_PER_AGENT = 20


def strategy_options(name: str) -> list[str]:
    """Command-line options that select strategy ``name`` with its benchmark arguments."""
    options = [f"--trainer.strategy={name}"]
    options += [f"--trainer.strategy.{key}={value}" for key, value in STRATEGIES[name].items()]
    return options


def final_return(run: Path, config: Path, seed: int) -> float:
    """Mean return of the run's final policy over fresh episodes of every agent."""
    data = yaml.safe_load(config.read_text())["data"]
    population = AgentPopulation(
        data["env_id"],
        num_agents=data["num_agents"],
        heterogeneity=data.get("heterogeneity"),
    )
    module = Reinforce.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    agents = [a for a in range(population.num_agents) for _ in range(EPISODES_PER_AGENT)]
    env = population.make_vector_env(agents)
    seeds = [800_000_000 + seed * 10_000 + i for i in range(len(agents))]
    returns = evaluate_policy(module.policy, env, seeds, action_seed=seed + 7).returns
    env.close()
    return float(returns.mean())


def run_cell(env: str, strategy: str, attack: str, seed: int) -> dict[str, object]:
    """Fit one (env, strategy, attack, seed) cell and measure its final return."""
    overrides = strategy_options(strategy) + ["--trainer.eval_episodes=1"]
    if attack != "clean":
        overrides.append(f"--data.byzantine={{agents: {NUM_BYZANTINE}, attack: {attack}}}")
    with tempfile.TemporaryDirectory() as root:
        run, seconds = fit_config(CONFIGS[env], seed, Path(root), *overrides)
        value = final_return(run, CONFIGS[env], seed)
    return {
        "env": env,
        "strategy": strategy,
        "attack": attack,
        "seed": seed,
        "return": value,
        "seconds": seconds,
    }


def key(cell: dict[str, object]) -> tuple:
    return (cell["env"], cell["strategy"], cell["attack"], cell["seed"])


def print_table(cells: list[dict[str, object]], envs: list[str], strategies: list[str]) -> None:
    """One row per strategy: mean ± std over seeds, and the share of the clean return kept."""
    by_key: dict[tuple, list[float]] = {}
    for cell in cells:
        by_key.setdefault(key(cell)[:3], []).append(float(cell["return"]))
    header = ["strategy"] + [f"{env} {attack}" for env in envs for attack in ATTACKS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for strategy in strategies:
        entries = [strategy]
        for env in envs:
            clean = by_key.get((env, strategy, "clean"), [])
            for attack in ATTACKS:
                values = by_key.get((env, strategy, attack), [])
                if len(values) < len(SEEDS):
                    entries.append("not run")
                    continue
                text = f"{np.mean(values):.1f} ± {np.std(values):.1f}"
                if attack != "clean" and len(clean) == len(SEEDS):
                    text += f" ({100 * np.mean(values) / np.mean(clean):.0f}%)"
                entries.append(text)
        print("| " + " | ".join(entries) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--jobs", type=int, default=1, help="fits to run at once")
    parser.add_argument("--results", type=Path, default=Path("robustness.jsonl"))
    parser.add_argument("--table-only", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    done = []
    if args.results.exists():
        done = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    finished = {key(cell) for cell in done}
    todo = [
        (env, strategy, attack, seed)
        for env in args.envs
        for strategy in args.strategies
        for attack in ATTACKS
        for seed in SEEDS
        if (env, strategy, attack, seed) not in finished
    ]
    if not args.table_only:
        with ThreadPoolExecutor(args.jobs) as pool, open(args.results, "a") as out:
            for cell in pool.map(lambda c: run_cell(*c), todo):
                print(json.dumps(cell), flush=True)
                out.write(json.dumps(cell) + "\n")
                out.flush()
                done.append(cell)
    print_table(done, args.envs, args.strategies)


if __name__ == "__main__":
    main()

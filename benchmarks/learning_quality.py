"""Final-policy quality on SimpleEnv: evaluate each seed's final global policy over 2,000 episodes.

Usage::

    python benchmarks/learning_quality.py configs/default.yaml configs/simple_tuned.yaml

Each config is fitted with seeds 42, 43 and 44 through the real command line. The final
``last.ckpt`` policy is then evaluated on 2,000 fresh SimpleEnv episodes. For reference, a
random policy scores 50, the oracle (pick the larger of ``state[0]`` and ``state[1]``) about
75, and the tutorial's own final policy 58-62.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from machine import describe_machine
from runs import fit_config

from fedrl_lightning import Reinforce
from fedrl_lightning.population.envs import SimpleVectorEnv
from fedrl_lightning.rollouts.evaluation import evaluate_policy

EPISODES = 2000
SEEDS = (42, 43, 44)


def final_policy_return(config: Path, seed: int, workdir: Path) -> tuple[float, int]:
    """Fit ``config`` with ``seed`` and return the final policy's mean return and env steps."""
    run, _ = fit_config(config, seed, workdir / f"{config.stem}-{seed}")
    module = Reinforce.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    env_steps = int(np.genfromtxt(run / "metrics.csv", delimiter=",", names=True)["env_steps"][-1])
    env = SimpleVectorEnv(num_envs=EPISODES)
    seeds = [10_000_000 + seed * EPISODES + i for i in range(EPISODES)]
    returns = evaluate_policy(module.policy, env, seeds, action_seed=seed).returns
    return float(returns.mean()), env_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="+")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        for config in args.configs:
            results = [final_policy_return(config, seed, Path(workdir)) for seed in SEEDS]
            scores = [score for score, _ in results]
            print(
                f"{config}: final policy over {EPISODES} episodes, seeds {SEEDS}: "
                + ", ".join(f"{s:.1f}" for s in scores)
                + f" (mean {statistics.mean(scores):.1f}, training env steps {results[0][1]:,})"
            )


if __name__ == "__main__":
    main()

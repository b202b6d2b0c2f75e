"""Curiosity on MountainCar: RND and ICM against no curiosity, 3 seeds, and coverage curves.

Usage::

    nice -n 10 python benchmarks/curiosity.py [--variants rnd off ...] [--jobs 2]

Each variant is a shipped config with overrides, fitted for seeds 42, 43 and 44 through the
real command line (the ``Coverage`` component is in both configs). The run's ``last.ckpt`` is
evaluated on 20 fresh episodes per agent, with seeds the run never used, actions sampled as
in training (the deterministic policy on the same episodes beside it). Env steps are the
run's own count, summed over all agents' training episodes. The coverage curves (the
fraction of a 20 x 20 grid over MountainCar's observation bounds that the training agents
have visited, against env steps) of the federated RND predictor, of agent-scoped predictors
and of no curiosity are drawn to ``benchmarks/figures/curiosity_coverage.png``, and their
numbers written beside it as CSV.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fresh_evaluation import fresh_evaluation, run_population
from machine import describe_machine
from runs import fit_config

ROOT = Path(__file__).resolve().parent.parent
DISCRETE = ROOT / "configs" / "mountaincar_rnd.yaml"
CONTINUOUS = ROOT / "configs" / "mountaincar_continuous_rnd.yaml"
FIGURES = Path(__file__).resolve().parent / "figures"
SEEDS = (42, 43, 44)
EPISODES_PER_AGENT = 20
FORCE = "{force: [0.0008, 0.0012]}"

VARIANTS: dict[str, tuple[Path, list[str], str]] = {
    "rnd": (DISCRETE, [], "MountainCar-v0, PPO + RND (federated predictor)"),
    "off": (DISCRETE, ["--model.init_args.curiosity=null"], "MountainCar-v0, curiosity off"),
    "rnd_agent_predictor": (
        DISCRETE,
        ["--trainer.server=Shared", "--trainer.server.agent=[curiosity.predictor.*]"],
        "MountainCar-v0, PPO + RND, agent-scoped predictors",
    ),
    "continuous_rnd": (CONTINUOUS, [], "MountainCarContinuous-v0, PPO + RND"),
    "force_rnd": (
        DISCRETE,
        [f"--data.heterogeneity={FORCE}"],
        "MountainCar-v0, force 0.0008-0.0012, PPO + RND",
    ),
    "force_icm": (
        DISCRETE,
        [f"--data.heterogeneity={FORCE}", "--model.init_args.curiosity={kind: icm, coef: 100}"],
        "MountainCar-v0, force 0.0008-0.0012, PPO + ICM",
    ),
    "continuous_off": (
        CONTINUOUS,
        ["--model.init_args.curiosity=null"],
        "MountainCarContinuous-v0, curiosity off",
    ),
}
COVERAGE_VARIANTS = ("rnd", "rnd_agent_predictor", "off")


@dataclass(frozen=True)
class SeedResult:
    """One seed's run of a variant: steps, time, fresh returns per agent, coverage curve."""

    seed: int
    env_steps: int
    seconds: float
    per_agent: np.ndarray
    per_agent_deterministic: np.ndarray
    curve: list[tuple[int, float]]


def run_seed(variant: str, seed: int, root: Path) -> SeedResult:
    """Fit ``variant`` with ``seed`` under ``root`` and evaluate its ``last.ckpt``."""
    config, overrides, _ = VARIANTS[variant]
    run, seconds = fit_config(config, seed, root, *overrides)
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    curve = [(int(row["env_steps"]), float(row["coverage"])) for row in rows]
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    return SeedResult(
        seed,
        int(rows[-1]["env_steps"]),
        seconds,
        fresh_evaluation(last, population, seed, EPISODES_PER_AGENT),
        fresh_evaluation(last, population, seed, EPISODES_PER_AGENT, deterministic=True),
        curve,
    )


def describe(variant: str, results: list[SeedResult]) -> str:
    """The variant's per-seed and 3-seed figures, as lines of text."""
    lines = [f"{variant}: {VARIANTS[variant][2]}"]
    for r in results:
        lines.append(
            f"  seed {r.seed}: {r.env_steps:,} env steps, {r.seconds:.0f} s, mean "
            f"{r.per_agent.mean():.1f}, worst agent {r.per_agent.min():.1f} (agent "
            f"{r.per_agent.argmin()}); deterministic {r.per_agent_deterministic.mean():.1f}; "
            f"final coverage {r.curve[-1][1]:.3f}"
        )
    means = [r.per_agent.mean() for r in results]
    lines.append(
        f"  {len(results)}-seed mean: {np.mean(means):.1f} (seeds "
        f"{' / '.join(f'{m:.1f}' for m in means)}), worst agent "
        f"{np.mean([r.per_agent.min() for r in results]):.1f}, deterministic "
        f"{np.mean([r.per_agent_deterministic.mean() for r in results]):.1f}, at most "
        f"{max(r.env_steps for r in results):,} steps; final coverage "
        f"{np.mean([r.curve[-1][1] for r in results]):.3f}"
    )
    return "\n".join(lines)


LABELS = {
    "rnd": "RND, federated predictor",
    "rnd_agent_predictor": "RND, agent-scoped predictors",
    "off": "no curiosity",
}
COVERAGE_CSV = FIGURES / "curiosity_coverage.csv"


def plot_coverage(results: dict[str, list[SeedResult]], machine: str) -> None:
    """Write the coverage curves' CSV (env steps: the seeds' mean per round), then draw them."""
    table = []
    for variant in COVERAGE_VARIANTS:
        if variant not in results:
            continue
        curves = results[variant]
        rounds = min(len(r.curve) for r in curves)
        steps = np.mean([[s for s, _ in r.curve[:rounds]] for r in curves], axis=0)
        values = np.array([[c for _, c in r.curve[:rounds]] for r in curves])
        for i in range(rounds):
            table.append([variant, int(steps[i]), *values[:, i].round(5).tolist()])
    FIGURES.mkdir(exist_ok=True)
    with open(COVERAGE_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "env_steps", *[f"seed_{s}" for s in SEEDS]])
        writer.writerows(table)
    draw_coverage(machine)


def draw_coverage(machine: str) -> None:
    """Draw the curves of :data:`COVERAGE_CSV`: the seeds' mean, their range shaded."""
    from matplotlib.figure import Figure

    with open(COVERAGE_CSV, newline="") as f:
        rows = list(csv.reader(f))[1:]
    figure = Figure(figsize=(7, 4.2))
    axes = figure.add_subplot()
    for variant in COVERAGE_VARIANTS:
        mine = [row for row in rows if row[0] == variant]
        if not mine:
            continue
        steps = np.array([int(row[1]) for row in mine])
        values = np.array([[float(x) for x in row[2:]] for row in mine])
        axes.plot(steps, values.mean(axis=1), label=LABELS[variant])
        axes.fill_between(steps, values.min(axis=1), values.max(axis=1), alpha=0.2)
    axes.set_xlabel("env steps, all agents")
    axes.set_ylabel("coverage (fraction of 20 x 20 cells visited)")
    axes.set_title(
        f"MountainCar-v0, 10 agents, PPO: 3 seeds (mean, range)\n{machine[:100]}", fontsize=8
    )
    axes.legend()
    figure.savefig(FIGURES / "curiosity_coverage.png", dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side")
    parser.add_argument("--replot", action="store_true", help="only redraw from the CSV")
    args = parser.parse_args()
    machine = describe_machine()
    if args.replot:
        draw_coverage(machine)
        return
    print(f"machine: {machine}")
    print(f"{EPISODES_PER_AGENT} fresh episodes per agent on last.ckpt, actions sampled")
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            (variant, seed): pool.submit(
                run_seed, variant, seed, Path(workdir) / variant / str(seed)
            )
            for variant in args.variants
            for seed in args.seeds
        }
        results = {}
        for variant in args.variants:
            results[variant] = [futures[(variant, seed)].result() for seed in args.seeds]
            print(describe(variant, results[variant]), flush=True)
            if variant in COVERAGE_VARIANTS:  # drawn again as each curve comes in
                plot_coverage(results, machine)


if __name__ == "__main__":
    main()

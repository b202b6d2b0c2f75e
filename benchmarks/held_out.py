"""The headline figures on held-out seeds: fit, evaluate ``last.ckpt`` fresh, write results.

Usage::

    python benchmarks/held_out.py FIGURE [FIGURE ...] [--seeds 100 ... 109] [--jobs 2]
        [--runs DIR] [--episodes N]
    python benchmarks/held_out.py --list
    python benchmarks/held_out.py --restamp FIGURE [FIGURE ...]

Each figure (see :data:`FIGURES`, or ``--list``) is a shipped config, perhaps with overrides,
a measure and a goal. For every seed the config is fitted through the real command line
(``python -m fedrl_lightning fit --config ... --seed_everything SEED``), ``--jobs`` seeds at a
time, each in its own processes. Then every agent's deployed policy from the run's
``last.ckpt`` (``load_module(last, agent=k)``: the global policy, with the agent's own
parameters where the run personalises) plays fresh episodes of its own environment, seeds the
run never used, sampling actions as in training. A seed's value is the mean over agents; its
worst agent is reported beside it with the standard error of that agent's mean.

The figure's summary (:func:`protocol.summarize`): IQM and mean over seeds with 95% bootstrap
CIs, the same for the worst agent, and the seeds that meet the goal. It is written to
``benchmarks/results/FIGURE.json`` with the commit, the machine, the config's hash and its
fingerprint (``benchmarks/check_figures.py``); ``benchmarks/render_figures.py`` makes the docs'
tables from it.

The default seeds are the reporting seeds 100-109: no config was tuned on them. Tune on
``--seeds 0 1 ... 9`` (:data:`protocol.TUNING_SEEDS`) with ``--no-write``.

A config rewritten without changing its run (an option renamed) keeps its results through
``--restamp``: it checks that the config's fingerprint is still the one the results were
measured under, then records the new config hash beside the old one (:func:`restamp`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from check_figures import fingerprint, machine_kind
from fresh_evaluation import run_population
from milestones import first_reaching, read_metrics
from protocol import (
    BOOTSTRAP_REPS,
    REPORTING_SEEDS,
    ROOT,
    TUNING_SEEDS,
    Goal,
    config_hash,
    provenance,
    results_path,
    summarize,
    write_results,
)
from runs import fit_config

CONFIGS = ROOT / "configs"


@dataclass(frozen=True)
class Figure:
    """One headline figure: what is fitted, how a seed is measured, and the goal.

    Attributes:
        config: The shipped config's file name, under ``configs/``.
        topic: The docs page the figure belongs on.
        title: The figure's row title.
        goal: The goal over seeds; ``None`` for a figure that is only reported.
        overrides: Command-line overrides after the config.
        episodes: Fresh episodes per agent.
        folder: The folder the config is in.
        steps_to: Measure the env steps to the first round whose evaluation mean reaches this
            (from ``metrics.csv``) instead of the fresh return; a seed that never reaches it
            counts its whole run's steps and is marked not reached.
        unit: What the value is, for the docs.
        notes: Words printed under the figure's goal: how the config was tuned, what was
            tried where the goal is missed. No measured numbers: those come from results.
    """

    config: str
    topic: str
    title: str
    goal: Goal | None
    overrides: tuple[str, ...] = ()
    episodes: int = 50
    steps_to: float | None = None
    unit: str = "return"
    folder: Path = CONFIGS
    notes: str = ""

    @property
    def path(self) -> Path:
        """The config file."""
        return self.folder / self.config

    def command(self) -> str:
        """The command a user runs to fit one seed of this figure."""
        extra = "".join(f" '{o}'" for o in self.overrides)
        return (
            f"python -m fedrl_lightning fit --config configs/{self.config}{extra} "
            "--seed_everything SEED"
        )


def conflict_figure(config: str, title: str) -> Figure:
    """A simple_conflict figure: every agent >= 72 in >= 9 of 10 seeds, 1,000 episodes each.

    A SimpleEnv return's std is about 36, so 1,000 episodes put an agent's mean within about
    1.1 (one standard error) of its true value.
    """
    return Figure(
        config,
        "personalization",
        f"simple_conflict, {title}",
        Goal("every agent >= 72 in >= 9 of 10 seeds", seed_worst=72.0, seeds_needed=9),
        episodes=1000,
    )


FIGURES: dict[str, Figure] = {
    "cartpole_hetero_ppo": Figure(
        "cartpole_hetero_ppo.yaml",
        "control",
        "CartPole, 10 pole lengths, PPO",
        Goal(
            "IQM >= 490, and worst agent >= 475 in >= 9 of 10 seeds, within 150k steps",
            iqm=490.0,
            seed_worst=475.0,
            seeds_needed=9,
            max_env_steps=150_000,
        ),
        notes=(
            "Re-tuned for this protocol on the tuning seeds: the earlier config (one agent a "
            "round, 88 rounds) missed on the held-out seeds, its shortest- or longest-pole agent "
            "left behind in most of them. Two agents a round whose changes the server adds in "
            "full (FedAvgM, server_lr 2) over 60 rounds steadied it; averaging the two agents "
            "instead, fewer rounds, or bigger batches for one agent did not."
        ),
    ),
    "cartpole_hetero_dqn": Figure(
        "cartpole_hetero_dqn.yaml",
        "control",
        "CartPole, 5 pole lengths (Jin et al.), double DQN",
        Goal(
            "IQM >= 490, and worst agent >= 450 in >= 8 of 10 seeds, within 100k steps",
            iqm=490.0,
            seed_worst=450.0,
            seeds_needed=8,
            max_env_steps=100_000,
        ),
        notes=(
            "Missed, and not tuned yet: RL Zoo's settings for DQN on CartPole-v1 (one agent, "
            "50k steps), each agent exploring over its first 3,200 steps, tried once on seed 42 "
            "before the held-out seeds. The fresh episodes act greedily, as DQN deploys. With "
            "these settings a single agent on the standard pole (no federation) also swings "
            "between balancing the pole for 500 steps and dropping it early, from one round to "
            "the next, so the miss is partly DQN's own instability here. To try on the tuning "
            "seeds: a lower learning rate, fewer gradient steps per env step, a slower target, "
            "keeping each agent's Adam moments between rounds (tried once on a single agent: "
            "no visible change), and the target re-sync (sync_targets) that the figure leaves off."
        ),
    ),
    "cartpole_hetero_dqn_sync_targets": Figure(
        "cartpole_hetero_dqn.yaml",
        "control",
        "CartPole, 5 pole lengths, double DQN, targets re-synced to the received weights",
        None,
        overrides=("--model.init_args.sync_targets=true",),
        notes=(
            "The other choice of the figure above, measured once: every round each agent's "
            "target network starts from the weights it receives, instead of its own target."
        ),
    ),
    "acrobot_ppo": Figure(
        "acrobot_ppo.yaml",
        "control",
        "Acrobot, PPO",
        Goal("IQM >= -85 within 300k steps", iqm=-85.0, seed_value=-85.0, max_env_steps=300_000),
        episodes=20,
        notes=(
            "Missed, but steady: every seed lands near the goal. With the earlier entropy "
            "bonus (0.005) four of the ten held-out seeds spent most of the budget at -500, "
            "the policy's entropy collapsing before any episode ended early; 0.01 fixed that "
            "on the tuning seeds and here. Most seeds now end a little short of -85; not tried: "
            "a schedule that lowers the entropy bonus late in the run. Tried on the tuning "
            "seeds, without a gain: observation normalisation, reward normalisation (every run "
            "stalls), more epochs, a smaller entropy bonus, fewer rounds."
        ),
    ),
    "pendulum_hetero_ppo": Figure(
        "pendulum_hetero_ppo.yaml",
        "control",
        "Pendulum, 10 gravities, PPO",
        Goal("IQM >= -200 within 300k steps", iqm=-200.0, seed_value=-200.0, max_env_steps=300_000),
        episodes=20,
    ),
    "pendulum_hetero_sac": Figure(
        "pendulum_hetero_sac.yaml",
        "control",
        "Pendulum, 5 gravities, SAC",
        Goal("IQM >= -170 within 50k steps", iqm=-170.0, seed_value=-170.0, max_env_steps=50_000),
        episodes=20,
        notes=(
            "RL Zoo's settings for SAC on Pendulum-v1 with hidden layers of 64, tried once on "
            "tuning seed 0 before the held-out seeds, and not changed. The fresh episodes act "
            "with the actor's mean action squashed into the bounds, as SAC deploys."
        ),
    ),
    "pendulum_hetero_td3": Figure(
        "pendulum_hetero_td3.yaml",
        "control",
        "Pendulum, 5 gravities, TD3",
        Goal("IQM >= -170 within 50k steps", iqm=-170.0, seed_value=-170.0, max_env_steps=50_000),
        episodes=20,
        notes=(
            "RL Zoo's settings for TD3 on Pendulum-v1 with hidden layers of 64 and updates "
            "from each agent's 1,000th step, tried once on tuning seed 0 before the held-out "
            "seeds, and not changed. Met by the IQM, but one held-out seed collapsed far "
            "below the others (see the per-seed values), so the mean's interval is wide: "
            "TD3 here is less steady than SAC. Not tried yet: a slower actor, or SB3's "
            "larger networks."
        ),
    ),
    "pendulum_hetero_sac_alone": Figure(
        "pendulum_hetero_sac.yaml",
        "control",
        "Pendulum, 5 gravities, SAC, each agent alone (no federation)",
        None,
        overrides=("--trainer.server=Shared", '--trainer.server.agent=["*"]'),
        episodes=20,
        notes=(
            "The figure above without federation: every parameter stays with its agent "
            "(agent-scoped), so each of the five learns from its own 10,000 steps only, and "
            "each is evaluated with its own weights."
        ),
    ),
    "pendulum_hetero_td3_alone": Figure(
        "pendulum_hetero_td3.yaml",
        "control",
        "Pendulum, 5 gravities, TD3, each agent alone (no federation)",
        None,
        overrides=("--trainer.server=Shared", '--trainer.server.agent=["*"]'),
        episodes=20,
        notes=(
            "The figure above without federation: every parameter stays with its agent, so "
            "each of the five learns from its own 10,000 steps only, and each is evaluated "
            "with its own weights."
        ),
    ),
    "lunarlander_ppo": Figure(
        "lunarlander_ppo.yaml",
        "control",
        "LunarLander, PPO",
        Goal(
            "IQM >= 200, >= 9 of 10 seeds >= 200, within 1M steps",
            iqm=200.0,
            seed_value=200.0,
            seeds_needed=9,
            max_env_steps=1_000_000,
        ),
        episodes=20,
    ),
    "mountaincar_rnd": Figure(
        "mountaincar_rnd.yaml",
        "curiosity",
        "MountainCar, PPO + RND",
        Goal("IQM >= -130 within 300k steps", iqm=-130.0, seed_value=-130.0, max_env_steps=300_000),
        episodes=20,
    ),
    "mountaincar_no_curiosity": Figure(
        "mountaincar_rnd.yaml",
        "curiosity",
        "MountainCar, PPO without curiosity",
        Goal(
            "stays at -200: IQM <= -199",
            iqm=-199.0,
            seed_value=-199.0,
            lower_is_better=True,
        ),
        overrides=("--model.init_args.curiosity=null",),
        episodes=20,
    ),
    "cartpole_distill_fedhpd": Figure(
        "cartpole_distill_fedhpd.yaml",
        "distillation",
        "CartPole, 10 REINFORCE agents of 3 sizes, distillation: agents' own policies",
        Goal("IQM >= 477 (FedHPD: 455.5 / 477.3)", iqm=477.0, seed_value=477.0),
        episodes=20,
    ),
    **{
        f"simple_conflict_{kind}": conflict_figure(f"simple_conflict_{kind}.yaml", title)
        for kind, title in (
            ("personal", "personal heads"),
            ("ifca", "IFCA"),
            ("tasks", "task-conditioned"),
        )
    },
    "simple_tuned": Figure(
        "simple_tuned.yaml",
        "personalization",
        "Simple, tuned (the tutorial's budget)",
        Goal("IQM >= 74 (oracle 75)", iqm=74.0, seed_value=74.0),
        episodes=200,
    ),
    "cartpole_hetero_ppo_sharing": Figure(
        "cartpole_hetero_ppo_sharing.yaml",
        "sharing",
        "CartPole-hetero PPO with trajectory sharing: env steps to a mean of 475",
        None,
        steps_to=475.0,
        unit="env steps",
    ),
    "cartpole_hetero_ppo_no_sharing": Figure(
        "cartpole_hetero_ppo_sharing.yaml",
        "sharing",
        "CartPole-hetero PPO without sharing: env steps to a mean of 475",
        None,
        overrides=("--trainer.components=[]",),
        steps_to=475.0,
        unit="env steps",
    ),
}


def measure_seed(
    figure: Figure, seed: int, root: Path, episodes: int | None, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Fit ``figure``'s config with ``seed`` under ``root`` and measure its ``last.ckpt``.

    ``extra`` overrides go after the figure's own (for tuning; never written as results).

    Returns:
        The seed's record: value, per-agent returns and standard errors, worst agent, env
        steps and seconds.
    """
    import torch

    from fedrl_lightning import load_module
    from fedrl_lightning.rollouts.evaluation import evaluate_agents

    torch.set_num_threads(1)
    run, seconds = fit_config(figure.path, seed, root, *figure.overrides, *extra)
    rows = read_metrics(run)
    env_steps = int(rows[-1]["env_steps"])
    population = run_population(run)
    last = run / "checkpoints" / "last.ckpt"
    agents = list(range(population.num_agents))
    evaluations = evaluate_agents(
        lambda a: load_module(last, agent=a).policy,
        population,
        agents,
        episodes or figure.episodes,
        seed,
    )
    per_agent = np.array([e.mean for e in evaluations])
    sem = np.array([e.returns.std(ddof=1) / np.sqrt(len(e.returns)) for e in evaluations])
    worst = int(per_agent.argmin())
    record: dict[str, Any] = {
        "seed": seed,
        "value": float(per_agent.mean()),
        "worst_agent": float(per_agent[worst]),
        "worst_agent_id": worst,
        "worst_agent_sem": float(sem[worst]),
        "per_agent": [round(float(x), 4) for x in per_agent],
        "per_agent_sem": [round(float(x), 4) for x in sem],
        "env_steps": env_steps,
        "rounds": len(rows),
        "seconds": round(seconds, 1),
    }
    if figure.steps_to is not None:
        reached = first_reaching(rows, figure.steps_to)
        record["fresh_return"] = record["value"]
        record["reached"] = reached is not None
        record["value"] = float(reached.env_steps if reached else env_steps)
    return record


def measure(
    name: str,
    figure: Figure,
    seeds: list[int],
    jobs: int,
    runs: Path,
    episodes: int | None,
    extra: tuple[str, ...] = (),
    reps: int = BOOTSTRAP_REPS,
) -> dict[str, Any]:
    """Measure ``figure``, named ``name``, over ``seeds``, ``jobs`` at a time.

    Returns:
        Its results, as :func:`protocol.write_results` writes them.
    """
    source = provenance()  # before the fits: the code they run
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {
            pool.submit(measure_seed, figure, seed, runs / name / str(seed), episodes, extra): seed
            for seed in seeds
        }
        records = []
        for future in concurrent.futures.as_completed(futures):
            record = future.result()
            records.append(record)
            print(
                f"  {name} seed {record['seed']}: {record['value']:.1f} {figure.unit}, worst agent "
                f"{record['worst_agent']:.1f} ({record['worst_agent_id']}), "
                f"{record['env_steps']:,} steps, {record['seconds']:.0f} s",
                flush=True,
            )
    records.sort(key=lambda r: r["seed"])
    return {
        "figure": name,
        "title": figure.title,
        "topic": figure.topic,
        "config": str(figure.path.relative_to(ROOT)),
        "overrides": list(figure.overrides),
        "command": figure.command(),
        "benchmark": f"python benchmarks/held_out.py {name} --jobs {jobs}",
        "config_hash": config_hash(figure.path, figure.overrides),
        "fingerprint": fingerprint(figure.path),
        "machine_kind": machine_kind(),
        **source,
        "seeds": seeds,
        "tuning_seeds": list(TUNING_SEEDS),
        "episodes_per_agent": episodes or figure.episodes,
        "unit": figure.unit,
        "goal": None if figure.goal is None else vars(figure.goal),
        "per_seed": records,
        "summary": summarize(records, figure.goal, reps),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def restamp(name: str, figure: Figure) -> str:
    """Record that ``figure``'s config was rewritten without changing the run it describes.

    A config can change shape while its run stays the same (an option renamed, a section
    moved). Then its results still hold, but their ``config_hash`` no longer matches. This
    checks the run on a machine of the kind the results were measured on: the config's
    fingerprint must equal the one the results were measured under. Only then is the new
    hash recorded, with the old one, in the results' ``restamped`` list; no number changes.

    Returns:
        What was done, in one line.
    """
    path = results_path(name)
    results = json.loads(path.read_text())
    new_hash = config_hash(figure.path, figure.overrides)
    if results["config_hash"] == new_hash:
        return f"{name}: its config is the one measured; nothing to do"
    current = fingerprint(figure.path)  # floats differ across CPUs: another kind never matches
    if current != results["fingerprint"]:
        return (
            f"{name}: fingerprint {current}, measured under {results['fingerprint']}: the run "
            f"changed, or this is another kind of machine ({results['machine']}); re-measure it"
        )
    results.setdefault("restamped", []).append(
        {
            "from_config_hash": results["config_hash"],
            "overrides_before": results["overrides"],
            "fingerprint": current,
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    results |= {
        "config_hash": new_hash,
        "overrides": list(figure.overrides),
        "command": figure.command(),
    }
    write_results(name, results)
    return f"{name}: restamped (the same run, fingerprint {current})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", help="figure names (--list shows them)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(REPORTING_SEEDS))
    parser.add_argument("--jobs", type=int, default=2, help="seeds fitted at a time")
    parser.add_argument("--runs", type=Path, help="keep run folders here (default: a temp dir)")
    parser.add_argument("--episodes", type=int, help="fresh episodes per agent (default: figure's)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an extra command-line override, such as --model.init_args.lr=0.001 (for tuning: "
        "needs --no-write)",
    )
    parser.add_argument(
        "--restamp",
        action="store_true",
        help="for a config rewritten without changing its run: check its fingerprint against "
        "the results' and record the new config hash; fits nothing else",
    )
    args = parser.parse_args()
    if args.restamp:
        for name in args.figures:
            print(restamp(name, FIGURES[name]))
        return
    if args.list or not args.figures:
        for name, figure in FIGURES.items():
            goal = figure.goal.text if figure.goal else "reported"
            print(f"{name}: {figure.title} [{goal}]")
        return
    unknown = [name for name in args.figures if name not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure(s) {', '.join(unknown)}; --list shows them")
    if args.override and not args.no_write:
        sys.exit("--override changes what is fitted: pass --no-write (results match the config)")
    tuning = sorted(set(args.seeds) & set(TUNING_SEEDS))
    if tuning and not args.no_write:
        sys.exit(f"seeds {tuning} are tuning seeds: pass --no-write, or report on 100-109")
    with tempfile.TemporaryDirectory() as workdir:
        runs = args.runs or Path(workdir)
        for name in args.figures:
            results = measure(
                name,
                FIGURES[name],
                args.seeds,
                args.jobs,
                runs,
                args.episodes,
                tuple(args.override),
            )
            summary = results["summary"]
            iqm, mean = summary["iqm"], summary["mean"]
            print(
                f"{name}: IQM {iqm['value']:.1f} [{iqm['low']:.1f}, {iqm['high']:.1f}], mean "
                f"{mean['value']:.1f} [{mean['low']:.1f}, {mean['high']:.1f}]"
                + (
                    f"; {summary['seeds_meeting_goal']}/{summary['seeds']} seeds meet the goal; "
                    f"goal {'MET' if summary['goal_met'] else 'MISSED'}"
                    if "goal_met" in summary
                    else ""
                ),
                flush=True,
            )
            if not args.no_write:
                print(f"  wrote {write_results(name, results)}")


if __name__ == "__main__":
    main()

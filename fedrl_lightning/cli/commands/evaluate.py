"""``python -m fedrl_lightning evaluate`` (or ``test``): a trained policy on fresh episodes."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from jsonargparse.typing import NonNegativeInt, PositiveInt

from fedrl_lightning.cli.commands.parser import CommandParser, agent_ids
from fedrl_lightning.deploy.loading import load_module
from fedrl_lightning.deploy.videos import check_recordable, record_videos, video_name
from fedrl_lightning.errors import ConfigError
from fedrl_lightning.federation.local_adaptation import LocalAdaptation
from fedrl_lightning.federation.trainer import FEDRL_KEY
from fedrl_lightning.learners import Learner
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.rollouts.evaluation import AgentEvaluation, evaluate_agents
from fedrl_lightning.run.checkpoints import load_checkpoint
from fedrl_lightning.run.metrics_csv import csv_text
from fedrl_lightning.run.outputs import Outputs, check_output, check_output_folder
from fedrl_lightning.run.run_folder import trained_checkpoint

__all__ = ["DESCRIPTION", "build_parser", "run"]

DESCRIPTION = "Evaluate a trained policy on the run's agents, or on others, over fresh episodes."
EVALUATION_FILE = "evaluation.csv"
IGNORED_DATA = {
    "--data.byzantine": "Byzantine agents corrupt what they send in training, and an "
    "evaluated agent acts with the policy evaluated",
}
"""Population options that evaluation has no use for, and why."""


def build_parser(prog: str) -> CommandParser:
    """The ``evaluate`` command's options; ``--data.*`` default to the run's own population."""
    parser = CommandParser(
        prog,
        f"{DESCRIPTION} The --data.* options default to the population of the run that saved "
        "the checkpoint (its config), not to the values shown.",
    )
    parser.add_checkpoint_arguments()
    parser.add_argument("--episodes", type=PositiveInt, default=10, help="Episodes per agent.")
    parser.add_argument(
        "--deterministic",
        type=bool,
        default=False,
        help="Take the most likely action (or the Gaussian's mean) instead of sampling.",
    )
    parser.add_argument(
        "--personalized",
        type=bool,
        default=False,
        help="Evaluate what each agent would deploy: the global weights with its task's and its "
        "own parameters (a run with --trainer.server.agent), its cluster's model (a run "
        "with --trainer.server Clustered), or its own whole model (a run with "
        "--trainer.server Distilled); otherwise the global policy.",
    )
    parser.add_argument(
        "--finetune_episodes",
        type=NonNegativeInt,
        default=0,
        help="Local adaptation: fine-tune the policy for this many episodes on each evaluated "
        "agent's own environment (a local fit, as an agent's in training, from random streams "
        "of its own) before evaluating it; 0: evaluate the policy as saved.",
    )
    parser.add_argument(
        "--seed",
        type=NonNegativeInt,
        default=0,
        help="Picks the episodes and the action noise; from a stream no run uses, so the "
        "episodes are fresh whatever the seed.",
    )
    parser.add_argument(
        "--agents",
        type=str | None,
        default=None,
        help="Agents to evaluate, as 0,3,9; default: all.",
    )
    parser.add_argument(
        "--out",
        type=str | None,
        default=None,
        help=f"The CSV to write; default: {EVALUATION_FILE} beside the checkpoint.",
    )
    parser.add_argument(
        "--record_video",
        type=str | None,
        default=None,
        help="A folder for MP4 videos of --video_agents (needs fedrl_lightning[video]).",
    )
    parser.add_argument(
        "--video_agents",
        type=str | None,
        default=None,
        help="Agents to record, as 0,9; default: the first agent evaluated.",
    )
    parser.add_argument(
        "--video_episodes", type=PositiveInt, default=1, help="Episodes to record per agent."
    )
    parser.add_class_arguments(
        AgentPopulation, "data", fail_untyped=False, sub_configs=True, skip={"seed"}
    )
    return parser


def run(args: list[str], prog: str) -> None:
    """Evaluate a checkpoint's policy; print a per-agent table and write the CSV."""
    parser = build_parser(prog)
    first = parser.parse_args(args)
    _refuse_ignored(first, args)
    checkpoint = trained_checkpoint(first.ckpt_path, first.default_root_dir)
    module = load_module(checkpoint)
    saved = _run_config(checkpoint)
    run_seed = int(saved.get("seed_everything") or 42)
    parser.set_defaults(_population_defaults(saved.get("data") or {}))
    config = parser.parse_args(args)
    population = AgentPopulation(**config.data.as_dict(), seed=run_seed)
    module.check_fits(population)
    agents = agent_ids(config.agents, "--agents", population.num_agents)
    if agents is None:
        agents = list(range(population.num_agents))
    video_agents = agent_ids(config.video_agents, "--video_agents", population.num_agents)
    default_out = checkpoint.parent / EVALUATION_FILE
    out = Path(config.out) if config.out is not None else default_out
    if out.is_dir():
        raise ConfigError(f"--out {out}: a folder, not a file")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: no folder {out.parent}")
    check_output(out, "--out", inputs=[checkpoint], own=[default_out])
    videos: list[Path] = []
    if config.record_video is not None:
        folder = check_output_folder(config.record_video, "--record_video")
        check_recordable(population)
        videos = [
            folder / video_name(agent, episode)
            for agent in video_agents or agents[:1]
            for episode in range(config.video_episodes)
        ]
        for video in videos:
            check_output(video, "--record_video", inputs=[checkpoint], own=videos)

    def own_policy(agent: int) -> MLPPolicy:
        return load_module(checkpoint, agent=agent).policy

    task_policies: dict[int, MLPPolicy] = {}

    def task_policy(agent: int) -> MLPPolicy:  # each task's global policy, of its sizes
        task = population.task_of(agent)
        if task not in task_policies:
            task_policies[task] = load_module(checkpoint, task=task).policy
        return task_policies[task]

    policy: MLPPolicy | Callable[[int], MLPPolicy] = module.policy
    if config.personalized:
        policy = own_policy
    elif len(population.task_sizes) > 1:
        policy = task_policy
    if config.finetune_episodes:
        policy = _finetuned_policies(checkpoint, module, population, config)
    results = evaluate_agents(
        policy, population, agents, config.episodes, config.seed, config.deterministic
    )
    actions = "deterministic" if config.deterministic else "sampled"
    whose = "the global policy"
    if config.personalized:
        whose = "each agent's own policy"
    elif len(population.task_sizes) > 1:
        whose = "each task's global policy"
    if config.finetune_episodes:
        whose += f" fine-tuned for {config.finetune_episodes} episodes on each agent"
    print(
        f"{checkpoint} ({type(module).__name__}{_round_of(checkpoint)}), {whose}: "
        f"{len(agents)} agents x {config.episodes} episodes of {population.env_id}, "
        f"{actions} actions, seed {config.seed}"
    )
    print(_table(results))
    worst = min(results, key=lambda result: result.mean)
    mean = sum(result.mean for result in results) / len(results)
    print(f"Mean return {mean:.2f}; worst agent {worst.agent}: {worst.mean:.2f}.")
    written = [out]
    with Outputs() as outputs:
        _write_csv(results, out, outputs)
        if config.record_video is not None:
            for video in videos:
                outputs.remember(video)
            _make_video_folder(Path(config.record_video), outputs)
            for agent in video_agents or agents[:1]:
                written += record_videos(
                    policy if policy is module.policy else policy(agent),
                    population,
                    [agent],
                    Path(config.record_video),
                    config.seed,
                    config.deterministic,
                    config.video_episodes,
                )
    for path in written:
        print(f"Wrote {path}")


def _finetuned_policies(
    checkpoint: Path, module: Learner, population: AgentPopulation, config: Namespace
) -> Callable[[int], MLPPolicy]:
    """Each agent's policy after ``--finetune_episodes`` episodes of local adaptation.

    Each agent starts from the saved policy it would otherwise be evaluated with: its own
    with ``--personalized``, its task's global policy in a run of several tasks, else the
    global one. It is fine-tuned once, the first time its policy is asked for, so its videos
    show the policy its table row evaluated. The fits' scratch folder is emptied after each
    fit and removed when the command exits.
    """
    adaptation = LocalAdaptation(module, population, config.finetune_episodes)
    adapted: dict[int, MLPPolicy] = {}

    def policy(agent: int) -> MLPPolicy:
        if agent not in adapted:
            if config.personalized:
                start = load_module(checkpoint, agent=agent)
            elif len(population.task_sizes) > 1:
                start = load_module(checkpoint, task=population.task_of(agent))
            else:
                start = module
            tuned = copy.deepcopy(start)
            hparams = dict(start.hparams)
            tuned.load_state_dict(
                adaptation.adapt(start.state_dict(), agent, config.seed, 0, hparams)
            )
            adapted[agent] = tuned.eval().policy
        return adapted[agent]

    return policy


def _refuse_ignored(config: Namespace, args: list[str]) -> None:
    """Refuse options that this command would ignore, as ``fit`` does, in one line.

    Args:
        config: The parsed options.
        args: The command line, to tell an option given from its default.
    """
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    if config.record_video is None:
        for option in ("--video_agents", "--video_episodes"):
            if option in given:
                raise ConfigError(
                    f"{option} applies to --record_video, which is not given; "
                    "add --record_video DIR or leave it out"
                )
    for option in IGNORED_DATA:
        if any(name == option or name.startswith(f"{option}.") for name in given):
            raise ConfigError(
                f"{option}: evaluate ignores it ({IGNORED_DATA[option]}); leave it out"
            )


def _make_video_folder(folder: Path, outputs: Outputs) -> None:
    """Create ``--record_video``'s folder, to remove if the command fails."""
    try:
        outputs.make_folder(folder)
    except OSError as err:
        raise ConfigError(f"--record_video {folder}: cannot create it ({err.strerror})") from None


def _run_config(checkpoint: Path) -> dict[str, Any]:
    """The config of the run that saved ``checkpoint``: from it, or from its run folder."""
    state = load_checkpoint(checkpoint).get(FEDRL_KEY)
    text = state.get("config") if isinstance(state, dict) else None
    path = checkpoint
    if not isinstance(text, str):  # an agent's checkpoint, in <run>/agents/
        path = checkpoint.parent.parent / "config.yaml"
        try:
            text = path.read_text() if path.is_file() else None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read the run's config ({err})") from None
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"{path}: the run's config is not valid YAML ({problem})") from None
    return config if isinstance(config, dict) else {}


def _population_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The saved ``data`` section as parser defaults, keeping only options that exist now."""
    known = inspect.signature(AgentPopulation).parameters
    return {f"data.{key}": value for key, value in data.items() if key in known}


def _round_of(checkpoint: Path) -> str:
    state = load_checkpoint(checkpoint).get(FEDRL_KEY)
    return f", round {state['round']}" if isinstance(state, dict) and "round" in state else ""


def _write_csv(results: list[AgentEvaluation], out: Path, outputs: Outputs) -> None:
    try:
        outputs.write_text(csv_text([result.row() for result in results]), out)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write it ({err.strerror})") from None


def _table(results: list[AgentEvaluation]) -> str:
    """The per-agent console table: agent, its parameters, the returns, the mean length."""
    parameters = list(results[0].parameters)
    header = ["agent", *parameters, "mean ± std", "min", "max", "episode length"]
    rows = [
        [
            str(result.agent),
            *(_cell(result.parameters[name]) for name in parameters),
            f"{result.mean:.1f} ± {result.std:.1f}",
            f"{result.returns.min():.1f}",
            f"{result.returns.max():.1f}",
            f"{result.lengths.mean():.1f}",
        ]
        for result in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    )


def _cell(value: Any) -> str:
    """An agent's parameter value in the table: numbers as ``%g``."""
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)

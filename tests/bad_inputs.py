"""Every bad input the tests try: each must end in exit 2 and one line that names the culprit.

Each case is (category, arguments after ``fit``, text the error line must contain). Cases run
on top of ``tests/configs/tiny.yaml`` unless their arguments give a ``--config`` of their own,
in a folder that already holds a finished run, which they must leave unchanged. Files that
cases name (``bad.yaml`` and friends) are written by :func:`write_input_files`.
"""

import hashlib
import io
import shutil
import struct
import zipfile
from pathlib import Path

import torch

INPUT_FILES = {
    "bad_syntax.yaml": "trainer:\n  num_rounds: [1\n",
    "bad_beta.yaml": (
        "trainer:\n  strategy:\n    class_path: FedTrimmedAvg\n    init_args:\n      beta: 0.6\n"
    ),
    "unknown_key.yaml": "trainer:\n  num_roundz: 3\n",
    "not_a_checkpoint.ckpt": "this is not a checkpoint\n",
    "a_file": "",
    "clip.mp4": "",
    "empty.ckpt": "",
    "yaml.ckpt": "trainer:\n  num_rounds: 3\n",
    "csv.ckpt": "round,eval_reward\n1,20.0\n",
    "empty.yaml": "",
    "list.yaml": "- trainer\n- model\n",
    "damaged_run/metrics.csv": "round,eval_reward,train_reward\n1,20.0,18.5\n2,2",
}
"""Files the cases name, by path below the case's folder."""

RUN = "lightning_logs/version_0"
LAST = f"{RUN}/checkpoints/last.ckpt"
DAMAGED_CHECKPOINTS = (
    "truncated.ckpt",
    "flipped.ckpt",
    "damaged_config.ckpt",
    "tensor.ckpt",
    "wrong_weights.ckpt",
    "strings.ckpt",
)
"""Checkpoints that :func:`write_input_files` makes from the finished run's ``last.ckpt``."""

EARLY = ["--trainer.callbacks+", "EarlyStopping", "--trainer.callbacks.patience", "2"]

GRADIENT = ["--trainer.server", "Gradient"]
CLUSTERED = ["--trainer.server", "Clustered"]
DISTILLED = ["--trainer.server", "Distilled"]
SHARED = ["--trainer.server", "Shared"]
CASES: list[tuple[str, list[str], str]] = [
    # Strategy arguments, from flags and from YAML.
    ("strategy", ["--trainer.strategy", "FedTrimmedAvg", "--trainer.strategy.beta", "0.6"], "beta"),
    ("strategy", ["--config", "bad_beta.yaml"], "beta"),
    (
        "strategy",
        ["--trainer.strategy", "FedAdam", "--trainer.strategy.server_lr", "-1"],
        "server_lr",
    ),
    (
        "strategy",
        ["--trainer.strategy", "FedAvg", "--trainer.strategy.init_args.weight_by", "stepz"],
        "weight_by: expected one of episodes, steps",
    ),
    ("strategy", ["--trainer.strategy", "FedAvg", "--trainer.strategy.mu", "1"], "strategy.mu"),
    ("strategy", ["--trainer.strategy", "Nope"], "not a known strategy"),
    ("strategy", ["--trainer.strategy", "FedProx", "--trainer.strategy.mu", "-1"], "mu"),
    (
        "strategy",
        ["--trainer.strategy", "TrustRegion", "--trainer.strategy.max_norm", "0"],
        "max_norm",
    ),
    ("strategy", ["--trainer.strategy", "FedAvgM", "--trainer.strategy.momentum", "1"], "momentum"),
    ("strategy", ["--trainer.strategy", "Reptile", "--trainer.strategy.meta_lr", "0"], "meta_lr"),
    ("strategy", ["--trainer.strategy", "Reptile", "--trainer.strategy.meta_lr", "nan"], "meta_lr"),
    (
        "strategy",
        ["--trainer.strategy", "PerFedAvg", "--trainer.strategy.inner_lr", "0"],
        "inner_lr",
    ),
    (
        "strategy",
        ["--trainer.strategy", "PerFedAvg", "--trainer.strategy.first_order", "maybe"],
        "first_order",
    ),
    # Robust strategies whose round is too small.
    ("round size", ["--trainer.strategy", "Krum"], "num_byzantine"),
    (
        "round size",
        ["--trainer.strategy", "MultiKrum", "--trainer.strategy.num_byzantine", "3"],
        "num_byzantine",
    ),
    (
        "round size",
        [
            "--trainer.agents_per_round",
            "3",
            "--data.num_agents",
            "10",
            "--trainer.strategy",
            "MultiKrum",
            "--trainer.strategy.num_byzantine",
            "0",
            "--trainer.strategy.num_selected",
            "4",
        ],
        "num_selected",
    ),
    ("round size", ["--trainer.agents_per_round", "4"], "trainer.agents_per_round"),
    ("round size", ["--trainer.min_agents_per_round", "3"], "trainer.min_agents_per_round"),
    # The seed.
    ("seed", ["--seed_everything=-5"], "seed_everything"),
    ("seed", ["--seed_everything", "false"], "seed_everything"),
    ("seed", ["--seed_everything", "4294967296"], "seed_everything"),
    ("seed", ["--seed_everything", "abc"], "seed_everything"),
    # Accelerators this machine does not have.
    ("accelerator", ["--trainer.accelerator", "gpu"], "trainer.accelerator"),
    ("accelerator", ["--trainer.accelerator", "tpu"], "trainer.accelerator"),
    ("accelerator", ["--trainer.accelerator", "quantum"], "trainer.accelerator"),
    # Environments.
    ("environment", ["--data.env_id", "Nope-v0"], "data.env_id"),
    ("environment", ["--data.env_id", "no_such_module:Env-v0"], "data.env_id"),
    ("environment", ["--data.env_id", "HalfCheetah-v5"], "gymnasium[mujoco]"),
    ("environment", ["--data.env_id", "Taxi-v3"], "data.env_id"),
    ("environment", ["--data.env_id", "faults:Endless-v0"], "data.max_episode_steps"),
    ("environment", ["--data.max_episode_steps", "0"], "data.max_episode_steps"),
    ("environment", ["--data.env_kwargs", "{no_such_argument: 1}"], "data.env_kwargs"),
    ("environment", ["--data.heterogeneity", "{no_such_attribute: [0, 1]}"], "heterogeneity"),
    ("environment", ["--data.byzantine", "{agents: 5, attack: sign_flip}"], "data.byzantine"),
    ("environment", ["--data.byzantine", "{agents: 1, attack: nope}"], "data.byzantine"),
    # Where the run is written.
    ("output folder", ["--trainer.default_root_dir", "a_file"], "trainer.default_root_dir"),
    ("output folder", ["--trainer.default_root_dir", "a_file/below"], "trainer.default_root_dir"),
    ("output folder", ["--trainer.default_root_dir", "/proc/no_such"], "trainer.default_root_dir"),
    (
        "output folder",
        ["--trainer.default_root_dir", "lightning_logs/version_0/checkpoints"],
        "trainer.default_root_dir 'lightning_logs/version_0/checkpoints': inside the run",
    ),
    # Options the executor would ignore.
    ("executor", ["--trainer.num_workers", "2"], "trainer.num_workers"),
    ("executor", ["--trainer.round_timeout", "60"], "trainer.round_timeout"),
    ("executor", ["--trainer.ray_address", "auto"], "trainer.ray_address"),
    ("executor", ["--trainer.executor", "threads"], "trainer.executor"),
    (
        "executor",
        [
            "--trainer.executor",
            "ray",
            "--trainer.ray_address",
            "auto",
            "--trainer.num_workers",
            "2",
        ],
        "trainer.num_workers",
    ),
    # Option names.
    ("option name", ["--trainer.num_round", "3"], "--trainer.num_round"),
    ("option name", ["--trainer.num_roundz", "3"], "--trainer.num_roundz"),
    ("option name", ["--model.learning_rate", "3"], "--model.learning_rate"),
    ("option name", ["--nope"], "--nope"),
    # Values of the wrong type or out of range, by section.
    ("trainer value", ["--trainer.num_rounds", "abc"], "trainer.num_rounds: expected an integer"),
    ("trainer value", ["--trainer.num_rounds", "0"], "trainer.num_rounds"),
    ("trainer value", ["--trainer.episodes_per_round=-2"], "trainer.episodes_per_round"),
    ("trainer value", ["--trainer.eval_agents", "0"], "trainer.eval_agents"),
    ("trainer value", ["--trainer.finetune_episodes=-1"], "trainer.finetune_episodes"),
    ("trainer value", ["--trainer.finetune_episodes", "2.5"], "trainer.finetune_episodes"),
    ("trainer value", ["--trainer.verbose", "maybe"], "trainer.verbose: expected true or false"),
    ("data value", ["--data.num_agents", "0"], "data.num_agents"),
    ("data value", ["--data.num_envs", "1.5"], "data.num_envs"),
    ("data value", ["--data.heterogeneity", "5"], "data.heterogeneity: expected a mapping"),
    (
        "data value",
        ["--data.heterogeneity", "{reward_sign: [1, 2, 3]}"],
        "--data.heterogeneity.reward_sign: expected a list of 2 numbers or {choices: ...}",
    ),
    (
        "data value",
        ["--data.heterogeneity.reward_sign", "{choice: [1, -1]}"],
        "--data.heterogeneity.reward_sign: expected a list of 2 numbers or {choices: ...}",
    ),
    (
        "data value",
        ["--data.heterogeneity", "{reward_sign: {choices: []}}"],
        "data.heterogeneity.reward_sign: give a range",
    ),
    ("data value", ["--data.byzantine.agents", "1"], "--data.byzantine.attack: must be given"),
    (
        "data value",
        ["--data.byzantine", "{agents: one, attack: zero}"],
        "--data.byzantine.agents: expected an integer or a list",
    ),
    (
        "data value",
        ["--data.byzantine", "{agents: 1, attack: zero, power: 3}"],
        "--data.byzantine.power: not an argument",
    ),
    ("model value", ["--model.gamma", "1.5"], "model.gamma"),
    ("model value", ["--model.gamma", "0"], "model.gamma"),
    ("model value", ["--model.lr=-0.1"], "model.lr"),
    ("model value", ["--model.lr", "inf"], "model.lr"),
    ("model value", ["--model.hidden_dim", "0"], "model.hidden_dim"),
    ("model value", ["--model.num_layers", "0"], "model.num_layers"),
    # Curiosity (RND, ICM) and coverage.
    ("curiosity", ["--model.curiosity", "{kind: nope}"], "model.curiosity.kind"),
    ("curiosity", ["--model.curiosity", "{kind: rnd, coef: -1}"], "model.curiosity.coef"),
    ("curiosity", ["--model.curiosity", "{kind: icm, gama: 0.9}"], "--model.curiosity.gama: not"),
    ("curiosity", ["--model.curiosity", "{kind: rnd, beta: 0.5}"], "unknown key 'beta' for rnd"),
    ("curiosity", ["--model.curiosity.coef", "3"], "--model.curiosity.kind: must be given"),
    (
        "curiosity",
        ["--model", "PPO", "--model.curiosity.kind", "icm", "--model.curiosity.beta", "2"],
        "model.curiosity.beta must be a finite number in [0, 1]",
    ),
    (
        "curiosity",
        ["--model.curiosity", "{kind: rnd, intrinsic_gamma: 1.5}"],
        "model.curiosity.intrinsic_gamma",
    ),
    # SimpleEnv's observations are unbounded, and tiny.yaml's REINFORCE keeps no statistics.
    ("coverage", ["--trainer.components+", "Coverage"], "trainer.components Coverage"),
    (
        "coverage",
        ["--trainer.coverage", "true"],
        "trainer.coverage: now --trainer.components+ Coverage",
    ),
    ("trainer value", ["--trainer.lr_schedule", "cosine"], "trainer.lr_schedule"),
    # Shared trajectory replay.
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.share_fraction", "0"],
        "trainer.components TrajectorySharing.share_fraction",
    ),
    (
        "sharing",
        [
            "--trainer.components+",
            "TrajectorySharing",
            "--trainer.components.share_fraction",
            "1.5",
        ],
        "trainer.components TrajectorySharing.share_fraction",
    ),
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.buffer_episodes", "0"],
        "trainer.components TrajectorySharing.buffer_episodes",
    ),
    (
        "sharing",
        [
            "--trainer.components+",
            "TrajectorySharing",
            "--trainer.components.buffer_episodes",
            "2.5",
        ],
        "--trainer.components.buffer_episodes: expected an integer",
    ),
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.replay_ratio", "-1"],
        "trainer.components TrajectorySharing.replay_ratio",
    ),
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.rho_max", "0"],
        "trainer.components TrajectorySharing.rho_max",
    ),
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.rho_max", ".inf"],
        "trainer.components TrajectorySharing.rho_max",
    ),
    (
        "sharing",
        ["--trainer.components+", "TrajectorySharing", "--trainer.components.buffer", "5"],
        "--trainer.components.buffer: not an argument",
    ),
    (
        "sharing",
        ["--trainer.sharing", "{share_fraction: 0.5}"],
        "trainer.sharing: now --trainer.components+ TrajectorySharing",
    ),
    (
        "sharing",
        [
            "--trainer.components+",
            "TrajectorySharing",
            "--data.num_agents",
            "4",
            "--data.tasks",
            "[{}, {}]",
        ],
        "trainer.components TrajectorySharing cannot be combined with data.tasks",
    ),
    (
        "environment",
        ["--data.byzantine", "{agents: 1, attack: poison_trajectory}"],
        "data.byzantine.attack",
    ),
    # The server model (trainer.server), and the options it replaced.
    ("server", ["--trainer.server", "Clusterd"], "trainer.server: not a known server model"),
    ("server", ["--trainer.clusters", "2"], "trainer.clusters: now --trainer.server Clustered"),
    ("components", ["--trainer.components+", "Bogus"], "not a known round component"),
    ("server", ["--trainer.update_mode", "gradient"], "trainer.update_mode: now"),
    ("server", ["--trainer.distillation", "{}"], "trainer.distillation: now"),
    ("server", ["--trainer.personalization", "{agent: [a]}"], "trainer.personalization: now"),
    ("server", ["--trainer.server_optimizer", "{name: sgd}"], "trainer.server_optimizer: now"),
    # Clustered federation (IFCA).
    ("clusters", [*CLUSTERED, "--trainer.server.k", "0"], "trainer.server.k"),
    ("clusters", [*CLUSTERED, "--trainer.server.eval_episodes", "0"], "server.eval_episodes"),
    (
        "clusters",
        [*CLUSTERED, "--data.num_agents", "4", "--data.tasks", "[{}, {}]"],
        "trainer.server Clustered: data.tasks gives 2 tasks",
    ),
    # Gradient sharing.
    ("gradient", [*GRADIENT, "--trainer.server.optimizer", "rmsprop"], "server.optimizer"),
    ("gradient", [*GRADIENT, "--trainer.server.lr", "0"], "trainer.server.lr"),
    ("gradient", [*GRADIENT, "--trainer.server.betas", "[0.9, 1.0]"], "trainer.server.betas"),
    ("gradient", [*GRADIENT, "--trainer.strategy", "FedAdam"], "trainer.strategy FedAdam"),
    ("gradient", [*GRADIENT, "--trainer.strategy", "FedProx"], "trainer.strategy FedProx"),
    ("gradient", [*GRADIENT, "--trainer.strategy", "PerFedAvg"], "trainer.strategy PerFedAvg"),
    ("gradient", [*GRADIENT, "--trainer.lr_schedule", "linear"], "trainer.lr_schedule linear"),
    (
        "gradient",
        [*GRADIENT, "--trainer.components+", "TrajectorySharing"],
        "trainer.server Gradient cannot be combined with trainer.components TrajectorySharing",
    ),
    ("gradient", [*GRADIENT, "--model", "PPO"], "model.update_epochs (4) must be 1"),
    # Policy distillation and agents' own models.
    ("distillation", [*DISTILLED, "--trainer.server.kl_coeff", "1"], "kl_coeff"),
    ("distillation", [*DISTILLED, "--trainer.server.kl_coef", "-1"], "trainer.server.kl_coef"),
    ("distillation", [*DISTILLED, "--trainer.server.probe_states", "0"], "server.probe_states"),
    ("distillation", [*DISTILLED, "--trainer.server.consensus", "max"], "server.consensus"),
    ("distillation", [*DISTILLED, "--trainer.server.student_lr", "0"], "server.student_lr"),
    (
        "distillation",
        [*DISTILLED, "--trainer.components+", "TrajectorySharing"],
        "trainer.server Distilled cannot be combined with trainer.components TrajectorySharing",
    ),
    (
        "distillation",
        [*DISTILLED, "--data.env_id", "Pendulum-v1"],
        "trainer.server Distilled: Pendulum-v1 has continuous actions",
    ),
    (
        "distillation",
        [*DISTILLED, "--model.normalize_observations", "true"],
        "trainer.server Distilled: Reinforce keeps running statistics",
    ),
    (
        "model heterogeneity",
        ["--data.model_heterogeneity", "{hidden_dim: {choices: [8, 16]}}"],
        "data.model_heterogeneity: agents with models of their own learn together only",
    ),
    (
        "model heterogeneity",
        [*DISTILLED, "--data.model_heterogeneity", "{width: [1, 2]}"],
        "data.model_heterogeneity: 'width' is not a hyperparameter of Reinforce",
    ),
    (
        "model heterogeneity",
        [*DISTILLED, "--data.model_heterogeneity", "{hidden_dim: [8, 9]}"],
        "data.model_heterogeneity.hidden_dim: an integer",
    ),
    (
        "model heterogeneity",
        [*DISTILLED, "--data.model_heterogeneity", "{lr: [-2, -1]}"],
        "data.model_heterogeneity: agent 0: model.lr must not be negative",
    ),
    (
        "model heterogeneity",
        [*DISTILLED, "--data.model_heterogeneity", "{lr: 5}"],
        "--data.model_heterogeneity.lr: expected a list of 2 numbers or {choices: ...}, got 5",
    ),
    (
        "model value",
        ["--model", "PPO", "--model.normalize_observations", "maybe"],
        "model.normalize_observations",
    ),
    ("model value", ["--model", "PPO", "--model.num_minibatches", "0"], "model.num_minibatches"),
    (
        "model value",
        ["--model", "A2C", "--model.normalize_rewards", "maybe"],
        "model.normalize_rewards",
    ),
    ("model value", ["--model.normalize_returns", "x"], "model.normalize_returns: expected one of"),
    # Config files.
    ("config file", ["--config", "bad_syntax.yaml"], "bad_syntax.yaml"),
    ("config file", ["--config", "empty.yaml"], "--config empty.yaml: holds no options"),
    ("config file", ["--config", "list.yaml"], "--config list.yaml: not a config"),
    ("config file", ["--config", LAST], f"--config {LAST}: not a YAML text file"),
    ("config file", ["--config", f"{RUN}/metrics.csv"], f"--config {RUN}/metrics.csv: not a"),
    ("config file", ["--config", "missing.yaml"], "missing.yaml"),
    ("config file", ["--config", "unknown_key.yaml"], "num_roundz"),
    # Resuming.
    ("resume", ["--ckpt_path", "missing.ckpt"], "missing.ckpt"),
    ("resume", ["--ckpt_path", "not_a_checkpoint.ckpt"], "not_a_checkpoint.ckpt"),
    *[
        ("damaged file", ["--ckpt_path", name], f"checkpoint {name}")
        for name in DAMAGED_CHECKPOINTS
    ],
    ("damaged file", ["--ckpt_path", "empty.ckpt"], "checkpoint empty.ckpt"),
    ("damaged file", ["--ckpt_path", "yaml.ckpt"], "checkpoint yaml.ckpt"),
    ("damaged file", ["--ckpt_path", f"{RUN}/metrics.csv"], f"checkpoint {RUN}/metrics.csv"),
    ("resume", ["--ckpt_path", "last", "--model.lr", "0.5"], "model.lr"),
    ("resume", ["--ckpt_path", "last", "--trainer.num_rounds", "1"], "trainer.num_rounds"),
    ("resume", ["--ckpt_path", "last", "--seed_everything", "8"], "seed_everything"),
    ("resume", ["--ckpt_path", "last", *CLUSTERED], "trainer.server"),
    # Callbacks and loggers.
    ("callbacks", ["--trainer.callbacks+", "EarlyStopping"], "trainer.callbacks: EarlyStopping"),
    ("callbacks", [*EARLY, "--trainer.callbacks.monitor", "nope"], "EarlyStopping.monitor"),
    ("callbacks", [*EARLY, "--trainer.callbacks.mode", "up"], "trainer.callbacks.mode"),
    ("callbacks", [*EARLY, "--trainer.callbacks.min_delta=-1"], "EarlyStopping.min_delta"),
    (
        "callbacks",
        ["--trainer.callbacks+", "RoundCheckpoint", "--trainer.callbacks.keep_last", "0"],
        "RoundCheckpoint.keep_last",
    ),
    (
        "callbacks",
        ["--trainer.callbacks+", "BestCheckpoint", "--trainer.callbacks.monitor", "loss"],
        "BestCheckpoint.monitor",
    ),
    ("callbacks", [*EARLY, *EARLY], "trainer.callbacks: two callbacks"),
    ("callbacks", ["--trainer.callbacks+", "Nope"], "trainer.callbacks: not a known callback"),
    ("loggers", ["--trainer.logger", "Nope"], "trainer.logger: not a known logger"),
    ("loggers", ["--trainer.logger", "WandbLogger"], "WandbLogger needs the wandb package"),
    ("loggers", ["--trainer.logger", "CometLogger"], "CometLogger needs the comet_ml package"),
    ("loggers", ["--trainer.logger", "NeptuneLogger"], "NeptuneLogger needs the neptune package"),
    (
        "loggers",
        ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "a_file/below"],
        "--trainer.logger CSVLogger: cannot create its save_dir",
    ),
    (
        "loggers",
        ["--trainer.logger", "TensorBoardLogger", "--trainer.logger.save_dir", "/proc/no_such"],
        "--trainer.logger TensorBoardLogger: cannot create its save_dir",
    ),
    (
        "loggers",
        [
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.save_dir",
            ".",
            "--trainer.logger.version",
            "0",
        ],
        "--trainer.logger CSVLogger: it would write in lightning_logs/version_0",
    ),
    (
        "loggers",
        ["--trainer.logger", "MLFlowLogger", "--trainer.logger.tracking_uri", "nope://x"],
        "MLFlowLogger",
    ),
    ("loggers", ["--trainer.logger", "TensorBoardLogger"], "trainer.logger: TensorBoardLogger"),
    (
        "loggers",
        ["--trainer.logger", "CSVLogger", "--trainer.logger.nope", "1"],
        "trainer.logger.nope",
    ),
]

CASES += [
    # Personalization and tasks.
    ("personalization", [*SHARED, "--trainer.server.agnet", "[policy.head.*]"], "agnet"),
    (
        "personalization",
        [*SHARED, "--trainer.server.agent", "[policy.hed.*]"],
        "trainer.server.agent: 'policy.hed.*' matches no parameter",
    ),
    (
        "personalization",
        [*SHARED, "--trainer.server.agent", "[policy.*]", "--trainer.server.task", "['*.bias']"],
        "matches patterns of two scopes",
    ),
    ("tasks", ["--data.tasks", "[{env_idd: CartPole-v1}]"], "data.tasks[0].env_idd"),
    ("tasks", ["--data.tasks", "[{num_agents: 2}, {num_agents: 2}]"], "add up to 4"),
    (
        "tasks",
        ["--data.tasks", "[{env_id: CartPole-v1}, {env_id: Acrobot-v1}]", "--data.num_agents", "4"],
        "scope it to the task",
    ),
    (
        "tasks",
        [
            "--data.tasks",
            "[{env_id: CartPole-v1}, {env_id: Acrobot-v1}]",
            "--data.num_agents",
            "4",
            "--data.task_conditioned",
            "true",
        ],
        "data.task_conditioned",
    ),
]

CASES += [
    # Values that used to pass the checks and fail mid-run.
    (
        "checked value",
        [
            "--data.env_id",
            "CartPole-v1",
            "--data.heterogeneity",
            "{length: {choices: [0.5, long]}}",
        ],
        "data.heterogeneity.length: 'long' is not a finite number",
    ),
    (
        "checked value",
        ["--data.env_id", "CartPole-v1", "--data.heterogeneity", "{length: {choices: [1, .nan]}}"],
        "data.heterogeneity.length: nan",
    ),
    (
        "checked value",
        ["--data.env_id", "CartPole-v1", "--data.heterogeneity", "{length: [0.1, .inf]}"],
        "data.heterogeneity.length",
    ),
    (
        "checked value",
        [*DISTILLED, "--data.model_heterogeneity", "{lr: {choices: [1, x]}}"],
        "data.model_heterogeneity.lr: 'x' is not a finite number",
    ),
    (
        "checked value",
        [*DISTILLED, "--model", "PPO", "--model.curiosity", "{kind: rnd}"],
        "turn off model.curiosity",
    ),
    ("checked value", ["--model.curiosity", "{kind: rnd, coef: .nan}"], "model.curiosity.coef"),
    (
        "checked value",
        ["--data.byzantine", "{agents: [0, 0], attack: sign_flip}"],
        "data.byzantine.agents: names agent 0 twice",
    ),
    ("checked value", ["--data.tasks", "[{env_id: 5}]"], "data.tasks[0]: data.env_id"),
    (
        "checked value",
        ["--data.env_id", "CartPole-v1", "--data.env_kwargs", "{render_mode: 5}"],
        "data.env_kwargs",
    ),
]

OUTPUT_CASES: list[tuple[str, list[str], str]] = [
    # An output that resolves to one of the run's files, or to the command's own input.
    ("output path", ["export", "--ckpt_path", LAST, "--out", LAST], f"--out {LAST}"),
    (
        "output path",
        ["evaluate", "--ckpt_path", f"{RUN}/checkpoints/best.ckpt"]
        + ["--out", f"{RUN}/checkpoints/best.ckpt"],
        "--out",
    ),
    ("output path", ["evaluate", "--out", f"{RUN}/metrics.csv"], "would overwrite metrics.csv"),
    ("output path", ["evaluate", "--out", f"{RUN}/config.yaml"], "would overwrite config.yaml"),
    ("output path", ["export", "--out", f"{RUN}/hparams.yaml"], "would overwrite hparams.yaml"),
    (
        "output path",
        ["export", "--out", f"{RUN}/checkpoints/round-0001.ckpt"],
        "would overwrite checkpoints/round-0001.ckpt",
    ),
    (
        "output path",
        ["export", "--out", f"{RUN}/checkpoints/round-0099.ckpt"],
        "is the name of checkpoints/round-0099.ckpt",
    ),
    (
        "output path",
        ["export", "--out", f"{RUN}/events.out.tfevents.1"],
        "is the name of events.out.tfevents.1",
    ),
    ("output path", ["evaluate", "--out", f"{RUN}/agents.csv"], "is the name of agents.csv"),
    (
        "output path",
        ["evaluate", "--out", f"{RUN}/checkpoints/../metrics.csv"],
        "would overwrite metrics.csv",
    ),
    ("output path", ["export", "--out", "link.ckpt"], "--out link.ckpt: that is"),
    ("output path", ["evaluate", "--out", "link.ckpt"], "--out link.ckpt: that is"),
    (
        "output path",
        ["export", "--ckpt_path", "copy.ckpt", "--out", "copy.ckpt"],
        "--out copy.ckpt",
    ),
    ("output path", ["export", "--ckpt_path", "./copy.ckpt", "--out", "copy.ckpt"], "--out"),
    # A command that would write and then fail checks everything first.
    ("write then fail", ["evaluate", "--record_video", "clip.mp4"], "--record_video clip.mp4"),
    ("write then fail", ["evaluate", "--record_video", "a_file/videos"], "--record_video"),
    ("write then fail", ["report", RUN, "--out", "a_file"], "--out a_file: cannot create it"),
    ("write then fail", ["report", RUN, "--out", "a_file/below"], "--out a_file/below"),
    # Damaged or wrong files, wherever a command reads one.
    *[
        ("damaged file", ["evaluate", "--ckpt_path", name], f"checkpoint {name}")
        for name in DAMAGED_CHECKPOINTS
    ],
    *[
        ("damaged file", ["export", "--ckpt_path", name, "--out", "p.pt"], f"checkpoint {name}")
        for name in DAMAGED_CHECKPOINTS
    ],
    ("damaged file", ["evaluate", "--ckpt_path", "empty.ckpt"], "checkpoint empty.ckpt"),
    ("damaged file", ["evaluate", "--ckpt_path", "yaml.ckpt"], "checkpoint yaml.ckpt"),
    ("damaged file", ["export", "--ckpt_path", "csv.ckpt", "--out", "p.pt"], "csv.ckpt"),
    ("damaged file", ["report", "damaged_run"], "damaged_run/metrics.csv"),
    # Options that the command would ignore.
    ("ignored option", ["evaluate", "--video_agents", "0"], "--video_agents applies to"),
    ("ignored option", ["evaluate", "--video_episodes", "2"], "--video_episodes applies to"),
    (
        "ignored option",
        ["evaluate", "--data.byzantine", "{agents: 1, attack: sign_flip}"],
        "--data.byzantine: evaluate ignores it",
    ),
]

COMMAND_CASES: list[tuple[str, list[str], str]] = [
    # The subcommands beside fit: (category, the whole command line, what the line names).
    ("evaluate", ["evaluate", "--ckpt_path", "missing.ckpt"], "--ckpt_path missing.ckpt"),
    ("evaluate", ["evaluate", "--ckpt_path", "not_a_checkpoint.ckpt"], "not_a_checkpoint"),
    ("evaluate", ["evaluate", "--ckpt_path", "a_file"], "a_file"),
    ("evaluate", ["evaluate", "--episodes", "0"], "--episodes"),
    ("evaluate", ["evaluate", "--finetune_episodes=-2"], "--finetune_episodes"),
    ("evaluate", ["evaluate", "--agents", "0,99"], "--agents"),
    ("evaluate", ["evaluate", "--video_agents", "x"], "--video_agents"),
    ("evaluate", ["evaluate", "--record_video", "videos"], "--record_video"),
    ("evaluate", ["evaluate", "--data.env_id", "Acrobot-v1"], "data.env_id Acrobot-v1"),
    ("evaluate", ["evaluate", "--data.num_agents", "0"], "data.num_agents"),
    ("evaluate", ["evaluate", "--out", "missing/evaluation.csv"], "--out"),
    ("evaluate", ["test", "--nope", "1"], "--nope"),
    ("report", ["report", "missing_run"], "missing_run"),
    ("report", ["report", "lightning_logs/version_0", "--labels", "a", "b"], "--labels"),
    ("export", ["export", "--format", "tflite", "--out", "p.x"], "--format"),
    ("export", ["export", "--out", "missing/policy.pt"], "--out"),
    ("export", ["export", "--ckpt_path", "not_a_checkpoint.ckpt", "--out", "p.pt"], "checkpoint"),
]


COMMAND_CASES += OUTPUT_CASES


def write_input_files(folder: Path) -> None:
    """Write the files that cases name into ``folder``, which holds a finished run.

    The damaged checkpoints are made from the run's ``last.ckpt``: cut in half, the first
    byte of its pickle flipped, a colon of its saved config changed, and valid torch files
    that hold a bare tensor, weights of the wrong names, or strings where tensors belong.
    """
    for name, text in INPUT_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    last = (folder / LAST).read_bytes()
    shutil.copyfile(folder / LAST, folder / "copy.ckpt")
    (folder / "link.ckpt").symlink_to(LAST)
    (folder / "truncated.ckpt").write_bytes(last[: len(last) // 2])
    (folder / "flipped.ckpt").write_bytes(flipped_pickle(last))
    at = last.index(b"\ntrainer:\n")
    (folder / "damaged_config.ckpt").write_bytes(last[:at] + b"\ntrainer{\n" + last[at + 10 :])
    torch.save(torch.zeros(3), folder / "tensor.ckpt")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, folder / "wrong_weights.ckpt")
    torch.save({"state_dict": {"weight": "zeros"}}, folder / "strings.ckpt")


def flipped_pickle(data: bytes, offset: int = 0, bit: int = 7) -> bytes:
    """``data``, a ``torch.save`` archive, with a bit of its pickle's byte ``offset`` flipped."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    start = info.header_offset  # the local header: its name and extra field lengths, then data
    name_length, extra_length = struct.unpack("<HH", data[start + 26 : start + 30])
    position = start + 30 + name_length + extra_length + offset
    damaged = bytearray(data)
    damaged[position] ^= 1 << bit
    return bytes(damaged)


def folder_digest(folder: Path) -> str:
    """A hash of every path, mode and byte below ``folder``: equal only if nothing changed."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(oct(path.stat().st_mode).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()

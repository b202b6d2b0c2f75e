"""Property-based fuzzing of the command line: any option, any wrong value, never a traceback.

Option names come from the parser itself (``--print_config`` lists every option, and every
built-in strategy's arguments are added); values are of the wrong type or out of range. Each
draw runs ``main`` in this process on top of ``tests/configs/fuzz.yaml`` (one round, one
five-step episode), as flags or as a second YAML file. The outcome must be a finished run, or
exit 2 with exactly one line on stderr and no run folder.
"""

import contextlib
import inspect
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from bad_inputs import folder_digest
from conftest import TESTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrl_lightning.cli.app import main
from fedrl_lightning.federation.strategies import all_strategies

FUZZ_CONFIG = TESTS / "configs" / "fuzz.yaml"

# Wrong types, and values out of range for some option or other; no value is both valid and
# large, so a draw that is accepted still runs in a fraction of a second.
VALUES = [
    "-1",
    "0",
    "-0.5",
    "1.5",
    "2",
    "abc",
    "",
    "nan",
    "inf",
    "-inf",
    "1e400",
    ".inf",
    "-.inf",
    ".nan",
    "1.0e+400",
    "null",
    "true",
    "false",
    "[1, 2]",
    "{a: 1}",
    "[]",
    "{}",
    "'{'",
    "-9999999999",
    "FedAvg",
    "Krum",
    "CartPole-v1",
    "last",
    "ray",
]


def _flatten(config, prefix=""):
    if not isinstance(config, dict) or not config:
        return [prefix]
    names = []
    for key, value in config.items():
        names += _flatten(value, f"{prefix}.{key}" if prefix else key)
    return names


def option_names():
    """Every option of ``fit``: the printed config's keys and every strategy's arguments."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["fit", "--config", str(FUZZ_CONFIG), "--print_config"]) == 0
    names = set(_flatten(yaml.safe_load(stdout.getvalue())))
    for strategy in all_strategies():
        names |= {f"trainer.strategy.{p}" for p in inspect.signature(strategy).parameters}
    names |= {"trainer.strategy.class_path", "seed_everything", "ckpt_path"}
    return sorted(names)


OPTIONS = option_names()
assignments = st.lists(
    st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)), min_size=1, max_size=3
)


def nested(name, value):
    """``a.b.c`` and ``v`` as the YAML mapping ``{a: {b: {c: v}}}``."""
    parsed = yaml.safe_load(value) if value else value
    for key in reversed(name.split(".")):
        parsed = {key: parsed}
    return parsed


def merge(into, update):
    """Merge mapping ``update`` into ``into``, section by section."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def run_in_fresh_folder(args):
    """``main(args)`` in an empty folder: its exit code, stderr, and whether a run was made."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        # Real files, not StringIO: Lightning's verbose output asks for a file descriptor.
        with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
            try:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    code = main(args(Path(folder)))
            finally:
                os.chdir(cwd)
            stderr.seek(0)
            runs = list(Path(folder).rglob("lightning_logs"))
            return code, stderr.read(), runs


def check_outcome(code, stderr, runs):
    if code == 0:
        assert runs, "a finished run has a run folder"
        return
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert not runs, f"{runs} made by a refused command: {stderr}"


FUZZ_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
@FUZZ_SETTINGS
@given(assignments)
def test_wrong_flags_end_in_a_run_or_one_line(pairs):
    def args(_folder):
        flags = [f"--{name}={value}" for name, value in pairs]
        return ["fit", "--config", str(FUZZ_CONFIG), *flags]

    check_outcome(*run_in_fresh_folder(args))


@pytest.mark.slow
@FUZZ_SETTINGS
@given(assignments)
def test_wrong_yaml_ends_in_a_run_or_one_line(pairs):
    def args(folder):
        extra = {}
        for name, value in pairs:
            try:
                merge(extra, nested(name, value))
            except yaml.YAMLError:
                continue
        (folder / "extra.yaml").write_text(yaml.safe_dump(extra))
        return ["fit", "--config", str(FUZZ_CONFIG), "--config", "extra.yaml"]

    check_outcome(*run_in_fresh_folder(args))


# The three dimensions below start from a finished run (``tests/configs/fuzz.yaml``'s), copied
# into a fresh folder for each draw, and check that the run is left as it was.

RUN = Path("lightning_logs/version_0")


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """A folder holding the finished fuzz run, to copy for each draw."""
    folder = tmp_path_factory.mktemp("fuzz_run")
    code, stderr, _ = run_in_folder(folder, ["fit", "--config", str(FUZZ_CONFIG)])
    assert code == 0, stderr
    return folder


def run_in_folder(folder, args):
    """``main(args)`` in ``folder``: its exit code, stderr and stdout."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(args)
            stderr.seek(0)
            stdout.seek(0)
            return code, stderr.read(), stdout.read()
    finally:
        os.chdir(cwd)


@contextlib.contextmanager
def copy_of(fuzz_run):
    """A fresh copy of the folder holding the finished run, and its run's files' digest."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(fuzz_run / "lightning_logs", Path(folder) / "lightning_logs")
        yield Path(folder), folder_digest(Path(folder) / RUN)


def check_refused_and_unchanged(code, stderr, folder, digest, may_finish=False):
    if code == 0 and may_finish:
        assert folder_digest(folder / RUN) == digest, "a command changed the finished run"
        return
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert folder_digest(folder / RUN) == digest, f"a refused command changed the run: {stderr}"


RUN_FILES = [
    "config.yaml",
    "metrics.csv",
    "hparams.yaml",
    "agents.csv",
    "checkpoints/last.ckpt",
    "checkpoints/best.ckpt",
    "checkpoints/round-0001.ckpt",
    "checkpoints/round-0002.ckpt",
    "events.out.tfevents.0",
]
SPELLINGS = ["plain", "absolute", "dot-dot", "link"]
output_draws = st.tuples(
    st.sampled_from(["evaluate", "export"]),
    st.sampled_from(RUN_FILES + ["<input>"]),
    st.sampled_from(SPELLINGS),
    st.sampled_from(["last", "best", str(RUN), str(RUN / "checkpoints/round-0001.ckpt")]),
)


INPUTS = {
    "last": RUN / "checkpoints/last.ckpt",
    "best": RUN / "checkpoints/best.ckpt",
    str(RUN): RUN / "checkpoints/last.ckpt",
    str(RUN / "checkpoints/round-0001.ckpt"): RUN / "checkpoints/round-0001.ckpt",
}
"""Each ``--ckpt_path`` of the draws, and the checkpoint it reads."""


def spelled(folder, relative, how):
    """``relative`` (a path below ``folder``) as an output path, spelled as ``how`` says."""
    if how == "absolute":
        return str(folder / relative)
    if how == "dot-dot":
        return str(relative.parent / ".." / relative.parent.name / relative.name)
    if how == "link":
        (folder / "link.out").symlink_to(folder / relative)
        return "link.out"
    return str(relative)


@FUZZ_SETTINGS
@given(output_draws)
def test_outputs_over_a_runs_own_files_are_refused(fuzz_run, draw):
    command, target, how, ckpt_path = draw
    relative = INPUTS[ckpt_path] if target == "<input>" else RUN / target
    with copy_of(fuzz_run) as (folder, digest):
        args = [command, "--ckpt_path", ckpt_path, "--out", spelled(folder, relative, how)]
        code, stderr, _ = run_in_folder(folder, args)
        check_refused_and_unchanged(code, stderr, folder, digest)
        assert "--out" in stderr


LOGGERS = ["CSVLogger", "TensorBoardLogger", "MLFlowLogger", "WandbLogger", "CometLogger"]
SAVE_DIRS = [None, ".", "a_file", "a_file/below", "/proc/no_such", "lightning_logs", "new/dir"]
logger_draws = st.tuples(
    st.sampled_from(LOGGERS),
    st.sampled_from(SAVE_DIRS),
    st.sampled_from([None, 0, "version_0", "other"]),
)


@pytest.mark.slow
@FUZZ_SETTINGS
@given(logger_draws)
def test_loggers_end_in_a_run_or_one_line_and_spare_the_run(fuzz_run, draw):
    logger, save_dir, version = draw
    with copy_of(fuzz_run) as (folder, digest):
        (folder / "a_file").write_text("")
        args = ["fit", "--config", str(FUZZ_CONFIG), "--trainer.logger", logger]
        if save_dir is not None:
            key = "tracking_uri" if logger == "MLFlowLogger" else "save_dir"
            args += [f"--trainer.logger.{key}", save_dir]
        if version is not None and logger in ("CSVLogger", "TensorBoardLogger"):
            args += ["--trainer.logger.version", str(version)]
        runs_before = sorted((folder / "lightning_logs").iterdir())
        code, stderr, _ = run_in_folder(folder, args)
        check_refused_and_unchanged(code, stderr, folder, digest, may_finish=True)
        if code != 0:
            assert sorted((folder / "lightning_logs").iterdir()) == runs_before, stderr


WRONG_FORMATS = {
    "empty": b"",
    "yaml": b"trainer:\n  num_rounds: 3\n",
    "csv": b"round,eval_reward\n1,20.0\n",
    "text": b"not a checkpoint\n",
    "binary": bytes(range(256)),
}
damage_draws = st.tuples(
    st.sampled_from(["evaluate", "export", "fit"]),
    st.one_of(
        st.tuples(st.just("truncated"), st.floats(0, 1, exclude_max=True)),
        st.tuples(st.just("flipped"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
        st.tuples(st.just("format"), st.sampled_from(sorted(WRONG_FORMATS))),
    ),
)


def damaged(data, damage):
    """``data`` damaged as ``damage`` says: cut, one bit flipped, or another file's bytes."""
    if damage[0] == "truncated":
        return data[: int(damage[1] * len(data))]
    if damage[0] == "flipped":
        position = int(damage[1] * len(data))
        return data[:position] + bytes([data[position] ^ (1 << damage[2])]) + data[position + 1 :]
    return WRONG_FORMATS[damage[1]]


@pytest.mark.slow
@FUZZ_SETTINGS
@given(damage_draws)
def test_damaged_checkpoints_end_in_a_result_or_one_line(fuzz_run, draw):
    command, damage = draw
    with copy_of(fuzz_run) as (folder, digest):
        last = (folder / RUN / "checkpoints/last.ckpt").read_bytes()
        (folder / "damaged.ckpt").write_bytes(damaged(last, damage))
        args = {
            "evaluate": ["evaluate", "--ckpt_path", "damaged.ckpt", "--out", "e.csv"],
            "export": ["export", "--ckpt_path", "damaged.ckpt", "--out", "p.pt"],
            "fit": ["fit", "--config", str(FUZZ_CONFIG), "--ckpt_path", "damaged.ckpt"],
        }[command]
        if command == "fit":
            args += ["--trainer.num_rounds", "2"]
        code, stderr, _ = run_in_folder(folder, args)
        # A flipped bit in a tensor's bytes leaves a loadable checkpoint of other weights.
        check_refused_and_unchanged(code, stderr, folder, digest, may_finish=True)
        if code != 0:
            assert "damaged.ckpt" in stderr, stderr

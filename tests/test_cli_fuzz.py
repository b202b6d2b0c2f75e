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
import tempfile
from pathlib import Path

import yaml
from conftest import TESTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrl_lightning.cli import main
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


@FUZZ_SETTINGS
@given(assignments)
def test_wrong_flags_end_in_a_run_or_one_line(pairs):
    def args(_folder):
        flags = [f"--{name}={value}" for name, value in pairs]
        return ["fit", "--config", str(FUZZ_CONFIG), *flags]

    check_outcome(*run_in_fresh_folder(args))


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

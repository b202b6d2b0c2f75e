"""Every hint for a missing optional package is the docs' install command for its extra."""

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, run_main
from doc_blocks import docs_text

from fedrl_lightning.extras import install_command

ROOT = Path(__file__).parents[1]
LOGGER_PACKAGES_OF_OTHERS = {"pip install wandb", "pip install comet-ml", "pip install neptune"}


def unimportable(monkeypatch, *modules, forget=()):
    """Make ``modules`` unimportable, as if not installed; ``forget``: modules that import them."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(f"{m}.") for m in (*modules, *forget)):
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # how Python marks a module unimportable


def test_the_install_command_is_the_docs_form():
    assert install_command("ray") == 'pip install -c constraints.txt -e ".[ray]"'
    for extra in ("ray", "mlflow", "video", "export", "plot"):
        assert install_command(extra) in docs_text(), extra


def test_no_other_install_command_in_the_package():
    """``pip install`` is spelt once, in extras.py; the other loggers' own packages aside."""
    found = {}
    for path in (ROOT / "fedrl_lightning").rglob("*.py"):
        if path.name != "extras.py":
            for hint in re.findall(r"pip install[^\"'`\n]*", path.read_text()):
                found.setdefault(path.name, set()).add(hint.strip())
    assert found == {"logger_checks.py": LOGGER_PACKAGES_OF_OTHERS}


@pytest.mark.parametrize(
    "args, modules, line",
    [
        (
            ["--trainer.executor", "ray"],
            ["ray"],
            "trainer.executor ray needs the ray package, which is not installed: "
            'pip install -c constraints.txt -e ".[ray]"',
        ),
        (
            ["--trainer.logger", "MLFlowLogger"],
            ["mlflow"],
            "--trainer.logger MLFlowLogger needs the mlflow package, which is not installed: "
            'pip install -c constraints.txt -e ".[mlflow]"',
        ),
        (
            ["--data.env_id", "LunarLander-v3"],
            ["Box2D"],
            "data.env_id: LunarLander-v3 needs the Box2D package, which is not installed: "
            'pip install -c constraints.txt -e ".[box2d]"',
        ),
    ],
    ids=["ray", "mlflow", "box2d"],
)
def test_fit_names_the_extra_to_install(args, modules, line, tmp_path, monkeypatch):
    unimportable(monkeypatch, *modules, forget=["gymnasium.envs.box2d"])
    code, _, stderr = run_main(["fit", "--config", str(TINY_CONFIG), *args], tmp_path, monkeypatch)
    assert code == 2
    assert stderr == f"error: {line}\n"
    assert "swig" not in stderr  # the box2d wheel needs none
    assert list(tmp_path.iterdir()) == []


def test_record_video_names_the_video_extra(tmp_path, monkeypatch):
    cartpole = ["--config", str(TINY_CONFIG), "--data.env_id", "CartPole-v1"]
    fit = ["fit", *cartpole, "--trainer.num_rounds", "1", "--trainer.logger", "false"]
    assert run_main(fit, tmp_path, monkeypatch)[0] == 0
    unimportable(monkeypatch, "moviepy")
    args = ["evaluate", "--episodes", "1", "--record_video", str(tmp_path / "videos")]
    code, _, stderr = run_main(args, tmp_path, monkeypatch)
    assert code == 2
    assert stderr == (
        "error: --record_video needs the moviepy package, which is not installed: "
        'pip install -c constraints.txt -e ".[video]"\n'
    )


def test_report_names_the_plot_extra(tiny_run, tmp_path, monkeypatch):
    unimportable(monkeypatch, "matplotlib", forget=["fedrl_lightning.cli.reporting.figures"])
    args = ["report", str(tiny_run[0] / "lightning_logs/version_0"), "--out", str(tmp_path)]
    code, _, stderr = run_main(args, tiny_run[0], monkeypatch)
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("error: report needs the matplotlib package, which is not installed")
    assert stderr.endswith(f": {install_command('plot')}\n")


def test_every_extra_a_hint_names_is_declared_and_in_dev():
    requires = importlib.metadata.requires("fedrl_lightning")
    extras = {}
    for line in requires:
        requirement, _, marker = line.partition(";")
        extra = re.search(r'extra == "([^"]+)"', marker)
        if extra:
            extras.setdefault(extra.group(1), set()).add(requirement.strip())
    for extra in ("ray", "mlflow", "box2d", "video", "plot", "export"):
        assert extra in extras, extra
        assert extras[extra] <= extras["dev"], extra

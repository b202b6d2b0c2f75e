"""A local MLflow store out of the box: the .[mlflow] extra's sqlite: store, no settings."""

import contextlib
import csv
import io
import sys

import pytest
from conftest import TINY_CONFIG
from mlflow.tracking import MlflowClient

from fedrl_lightning.cli.app import main

RUN = "lightning_logs/version_0"


@pytest.fixture(autouse=True)
def no_mlflow_settings(monkeypatch):
    """What a new user has: no MLFLOW_* variables."""
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def fit(tmp_path, monkeypatch, *args):
    monkeypatch.chdir(tmp_path)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            ["fit", "--config", str(TINY_CONFIG), "--trainer.logger", "MLFlowLogger", *args]
        )
    return code, stderr.getvalue()


def test_a_sqlite_store_gets_every_round(tmp_path, monkeypatch):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, stderr = fit(
        tmp_path,
        monkeypatch,
        "--trainer.logger.tracking_uri",
        tracking,
        "--trainer.logger.experiment_name",
        "fedrl",
    )
    assert code == 0, stderr
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("fedrl")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    with open(tmp_path / RUN / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in ("eval_reward", "train_reward", "episodes"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3], key
        assert [m.value for m in history] == pytest.approx([float(r[key]) for r in rows]), key
    assert run.data.params["trainer/num_rounds"] == "3"


def test_the_default_file_store_says_to_give_a_sqlite_store(tmp_path, monkeypatch):
    code, stderr = fit(tmp_path, monkeypatch)
    assert code == 2
    assert stderr == (
        "error: --trainer.logger MLFlowLogger: MLflow 3 refuses a file: store unless "
        "MLFLOW_ALLOW_FILE_STORE=true is set; for a local store give "
        "--trainer.logger.tracking_uri sqlite:///mlflow.db\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_store_without_sqlalchemy_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # how Python marks it unimportable
    code, stderr = fit(tmp_path, monkeypatch, "--trainer.logger.tracking_uri", "sqlite:///m.db")
    assert code == 2
    assert stderr == (
        "error: --trainer.logger MLFlowLogger's sqlite: tracking_uri needs the sqlalchemy "
        'package, which is not installed: pip install -c constraints.txt -e ".[mlflow]"\n'
    )
    assert list(tmp_path.iterdir()) == []

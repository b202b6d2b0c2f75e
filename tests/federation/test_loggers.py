"""Loggers: metrics.csv always; TensorBoard by default; any Lightning Logger, MLflow included."""

import csv

import pytest
import yaml
from conftest import TINY_CONFIG, run_cli
from mlflow.tracking import MlflowClient

RUN = "lightning_logs/version_0"


def rows_of(cwd):
    with open(cwd / RUN / "metrics.csv") as f:
        return list(csv.DictReader(f))


def flatten(config, prefix=""):
    if not isinstance(config, dict) or not config:
        return {prefix: config}
    flat = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    return flat


@pytest.fixture(autouse=True)
def mlflow_file_store(monkeypatch):
    """MLflow 3 refuses its file store unless told; a local file: store is what we test."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def mlflow_run(tracking):
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("fedrl")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_mlflow_gets_every_metric_of_every_round_and_the_config(tmp_path):
    tracking = f"file:{tmp_path / 'mlruns'}"
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--trainer.logger",
        "MLFlowLogger",
        "--trainer.logger.tracking_uri",
        tracking,
        "--trainer.logger.experiment_name",
        "fedrl",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # MLflow's "creating experiment" stays quiet
    client, run = mlflow_run(tracking)
    assert run.info.status == "FINISHED"
    rows = rows_of(tmp_path)
    numeric = [key for key in rows[0] if key not in ("failed_agents", "byzantine_agents")]
    assert "eval_reward_per_agent/2" in numeric and "train_loss" in numeric
    for key in numeric:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [int(row["round"]) for row in rows], key
        assert [m.value for m in history] == pytest.approx([float(r[key]) for r in rows]), key
    config = yaml.safe_load((tmp_path / RUN / "config.yaml").read_text())
    expected = {key: str(value)[:250] for key, value in flatten(config).items()}
    assert run.data.params == expected
    # A logger given replaces the default TensorBoard, as in Lightning.
    assert not list((tmp_path / RUN).glob("events.out.tfevents.*"))


def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    """Resumed (here: extended), a run logs on to the same MLflow run, one value per round."""
    tracking = f"file:{tmp_path / 'mlruns'}"
    logger = ["--trainer.logger", "MLFlowLogger", "--trainer.logger.tracking_uri", tracking]
    logger += ["--trainer.logger.experiment_name", "fedrl"]
    args = ["--config", str(TINY_CONFIG), *logger]
    first = run_cli("fit", *args, "--trainer.num_rounds", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    _, before = mlflow_run(tracking)
    resumed = run_cli(
        "fit", *args, "--ckpt_path", "last", "--trainer.num_rounds", "4", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    client, run = mlflow_run(tracking)  # still one run: the same
    assert run.info.run_id == before.info.run_id and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "eval_reward")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx(
        [float(row["eval_reward"]) for row in rows_of(tmp_path)]
    )
    # MLflow params cannot change: the first value stays, the resumed one is a tag.
    assert run.data.params["trainer/num_rounds"] == "2"
    assert run.data.tags["resumed/trainer/num_rounds"] == "4"


def test_default_tensorboard_writes_the_config_as_hparams_yaml(tiny_run):
    cwd, _ = tiny_run
    hparams = yaml.safe_load((cwd / RUN / "hparams.yaml").read_text())
    assert hparams == yaml.safe_load((cwd / RUN / "config.yaml").read_text())
    assert list((cwd / RUN).glob("events.out.tfevents.*"))


def test_logger_false_keeps_only_metrics_csv(tmp_path):
    result = run_cli("fit", "--config", str(TINY_CONFIG), "--trainer.logger", "false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / RUN).iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.csv",
    ]
    assert len(rows_of(tmp_path)) == 3


def test_a_list_of_loggers_each_get_the_rounds_and_a_resume_may_change_them(tmp_path):
    tracking = f"file:{tmp_path / 'mlruns'}"
    loggers = yaml.safe_dump(
        [
            {
                "class_path": "lightning.pytorch.loggers.MLFlowLogger",
                "init_args": {"tracking_uri": tracking, "experiment_name": "fedrl"},
            },
            {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(tmp_path / "csv"), "name": "fedrl"},
            },
        ],
        default_flow_style=True,
    )
    args = ["--config", str(TINY_CONFIG), "--trainer.num_rounds", "2"]
    result = run_cli("fit", *args, "--trainer.logger", loggers, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, run = mlflow_run(tracking)
    assert run.data.metrics["round"] == 2
    with open(tmp_path / "csv/fedrl/version_0/metrics.csv") as f:
        assert [row["round"] for row in csv.DictReader(f)] == ["1", "2"]

    resumed = run_cli(
        "fit",
        "--ckpt_path",
        "last",
        "--trainer.num_rounds",
        "3",
        "--trainer.logger",
        "false",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [row["round"] for row in rows_of(tmp_path)] == ["1", "2", "3"]
    saved = yaml.safe_load((tmp_path / RUN / "config.yaml").read_text())
    assert saved["trainer"]["logger"] is False


def test_a_logger_that_cannot_be_built_is_one_line(tmp_path):
    # (MLflow 3 refusing a file: store has a line of its own: test_mlflow_local.py.)
    result = run_cli(
        "fit",
        "--config",
        str(TINY_CONFIG),
        "--trainer.logger",
        "MLFlowLogger",
        "--trainer.logger.tracking_uri",
        "nope://x",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: trainer.logger: MLFlowLogger could not be built: ")
    assert not (tmp_path / "lightning_logs").exists()

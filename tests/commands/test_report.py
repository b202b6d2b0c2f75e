"""``python -m fedrl_lightning report``: the files, the data they plot, overlays, bad input."""

import contextlib
import csv
import io
import shutil
import sys

import numpy as np
import pytest
from conftest import TINY_CONFIG, run_cli

from fedrl_lightning.cli.app import main
from fedrl_lightning.cli.reporting import series
from fedrl_lightning.run.run_record import read_run

matplotlib_image = pytest.importorskip("matplotlib.image")
from fedrl_lightning.cli.reporting.figures import FIGURES, draw_report  # noqa: E402

RUN = "lightning_logs/version_0"
# Seed 7, 4 agents, 3 a round, agent 1 Byzantine, each local fit failing with probability 0.3:
# round 3 has a failed agent, rounds 2 and 4 a Byzantine one (the test checks that it does).
FLAKY = [
    "--model", "faults.FlakyModule", "--model.crash_prob", "0.3",
    "--data.num_agents", "4", "--trainer.agents_per_round", "3", "--trainer.num_rounds", "4",
    "--data.byzantine", "{agents: [1], attack: sign_flip}",
]  # fmt: skip


@pytest.fixture(scope="module")
def flaky_run(tmp_path_factory):
    """A finished tiny run with failed and Byzantine agents, made by the real command line."""
    cwd = tmp_path_factory.mktemp("flaky")
    result = run_cli("fit", "--config", str(TINY_CONFIG), *FLAKY, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / RUN


@pytest.fixture
def plain_run(tiny_run, tmp_path):
    """A copy of the session's tiny run (3 rounds of 3 agents), to write reports into."""
    source, _ = tiny_run
    shutil.copytree(source / RUN, tmp_path / RUN)
    return tmp_path / RUN


def read_rows(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def run_in_process(*args):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["report", *map(str, args)])
    return code, stdout.getvalue(), stderr.getvalue()


def assert_png(path, height_range):
    assert path.stat().st_size > 10_000
    image = matplotlib_image.imread(path)
    assert image.shape[1] == 1000 and image.shape[2] in (3, 4)  # 10 inches at 100 dpi
    assert height_range[0] <= image.shape[0] <= height_range[1]
    assert image.std() > 0.05  # not a blank page


def test_one_run_gives_three_pngs_in_its_report_folder(flaky_run):
    result = run_cli("report", str(flaky_run), cwd=flaky_run)
    assert result.returncode == 0, result.stderr
    written = [flaky_run / "report" / f"{name}.png" for name in FIGURES]
    assert result.stdout.splitlines() == [str(path) for path in written]
    assert_png(written[0], (600, 700))  # learning curve
    assert_png(written[1], (250, 1600))  # heatmap, as tall as its agents need
    assert_png(written[2], (380, 460))  # traffic
    assert not list((flaky_run / "report").glob(".*"))  # no temporary files left


def test_several_runs_go_to_the_first_runs_compare_folder_with_labels(flaky_run, plain_run):
    result = run_cli(
        "report", str(plain_run), str(flaky_run), "--labels", "honest", "faulty",
        "--x", "env_steps", cwd=plain_run,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = plain_run / "report" / "compare"
    assert result.stdout.splitlines() == [str(folder / f"{name}.png") for name in FIGURES]
    for name in FIGURES:
        assert matplotlib_image.imread(folder / f"{name}.png").shape[1] == 1000
    assert not (plain_run / "report" / "learning_curve.png").exists()


def test_the_band_is_the_range_of_the_per_agent_columns(flaky_run):
    rows = read_rows(flaky_run)
    agents = [key for key in rows[0] if key.startswith("eval_reward_per_agent/")]
    assert len(agents) == 4
    low, high = series.agent_band(read_run(flaky_run))
    assert low.tolist() == [min(float(row[a]) for a in agents) for row in rows]
    assert high.tolist() == [max(float(row[a]) for a in agents) for row in rows]


def test_marks_land_on_the_failed_and_byzantine_agents_rounds(flaky_run):
    rows = read_rows(flaky_run)
    by_hand = {
        kind: [(int(row["round"]), int(a)) for row in rows for a in row[column].split()]
        for kind, column in series.MARK_KINDS.items()
    }
    assert by_hand["failed"] and by_hand["byzantine"], "the fixture should have both kinds"
    assert all(agent == 1 for _, agent in by_hand["byzantine"])
    run = read_run(flaky_run)
    for kind, pairs in by_hand.items():
        assert series.agent_marks(run, kind) == pairs
        assert series.marked_rounds(run, kind).tolist() == sorted({r for r, _ in pairs})
    # In the heatmap, each mark sits on its (round, agent) cell: x = round, y = the agent's row.
    agents, _ = series.heatmap(run)
    panel = draw_report([run], ["flaky"])["agent_heatmap"].axes[0]
    offsets = {tuple(map(float, xy)) for c in panel.collections[1:] for xy in c.get_offsets()}
    expected = {(float(r), float(agents.index(a))) for pairs in by_hand.values() for r, a in pairs}
    assert offsets == expected


def test_heatmap_rows_are_evaluated_and_marked_agents(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text(
        "round,train_reward,eval_reward,eval_reward_per_agent/0,eval_reward_per_agent/5,"
        "num_failed_agents,failed_agents,byzantine_agents,env_steps\n"
        "1,1.0,2.0,1.0,3.0,1,3,,10\n"
        "2,2.0,4.0,,4.0,0,,5,25\n"
    )
    record = read_run(run)
    agents, table = series.heatmap(record)
    assert agents == [0, 3, 5]  # agent 3 is never evaluated, but failed in round 1
    np.testing.assert_array_equal(table, [[1.0, np.nan], [np.nan, np.nan], [3.0, 4.0]])
    low, high = series.agent_band(record)
    assert low.tolist() == [1.0, 4.0] and high.tolist() == [3.0, 4.0]  # empty cells skipped
    assert series.agent_marks(record, "failed") == [(1, 3)]
    assert series.agent_marks(record, "byzantine") == [(2, 5)]
    assert series.x_values(record, "env_steps").tolist() == [10.0, 25.0]


def test_overlaid_runs_are_two_labelled_lines(flaky_run, plain_run):
    runs = [read_run(plain_run), read_run(flaky_run)]
    labels = series.run_labels(runs)
    assert labels == ["Reinforce", "FlakyModule"]  # what differs; both RewardWeighted, seed 7
    figures = draw_report(runs, labels, x="env_steps")
    for name in ("learning_curve", "traffic"):
        legend = figures[name].legends[0]
        assert [text.get_text() for text in legend.get_texts()] == labels
    evaluation = figures["learning_curve"].axes[0]
    mean_lines = [line for line in evaluation.get_lines() if line.get_label() in labels]
    assert len(mean_lines) == 2
    for line, run in zip(mean_lines, runs, strict=True):
        assert line.get_xdata().tolist() == run.column("env_steps").tolist()
        assert line.get_ydata().tolist() == run.column("eval_reward").tolist()
    assert [panel.get_title() for panel in figures["agent_heatmap"].axes[:2]] == labels


def test_default_labels_keep_what_differs(tmp_path):
    def run_with(name, strategy, seed):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.csv").write_text("round,eval_reward\n1,1.0\n")
        (run / "config.yaml").write_text(
            f"seed_everything: {seed}\ntrainer:\n  strategy: {strategy}\n"
            "model:\n  class_path: fedrl_lightning.PPO\n"
        )
        return read_run(run)

    a, b, c = run_with("a", "FedAvg", 42), run_with("b", "FedAvg", 43), run_with("c", "Krum", 42)
    assert series.run_labels([a]) == ["FedAvg · PPO · seed 42"]
    assert series.run_labels([a, b]) == ["seed 42", "seed 43"]
    three = ["FedAvg · seed 42", "FedAvg · seed 43", "Krum · seed 42"]
    assert series.run_labels([a, b, c]) == three
    assert series.run_labels([a, a]) == [f"FedAvg · PPO · seed 42 ({a.path})"] * 2


def test_pngs_are_written_atomically(plain_run, monkeypatch):
    import fedrl_lightning.run.outputs as outputs

    written = {}

    def record(data, path):
        written[path] = data

    monkeypatch.setattr(outputs, "atomic_write_bytes", record)
    code, stdout, stderr = run_in_process(plain_run)
    assert code == 0, stderr
    assert sorted(written) == sorted(plain_run / "report" / f"{n}.png" for n in FIGURES)
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in written.values())
    assert stdout.splitlines() == [str(plain_run / "report" / f"{n}.png") for n in FIGURES]


def damage(run, how):
    """Damage ``run``'s files as ``how`` says; return what the error line must name."""
    metrics = run / "metrics.csv"
    text = metrics.read_text()
    if how == "no metrics.csv":
        metrics.unlink()
        return f"{run}: not a run folder"
    if how == "empty metrics.csv":
        metrics.write_text("")
        return f"{metrics}: empty"
    if how == "header only":
        metrics.write_text(text.splitlines()[0] + "\n")
        return f"{metrics}: no rounds"
    if how == "truncated row":
        metrics.write_text(text[: len(text) - 40])
        return f"{metrics} line 4"
    if how == "not a number":
        metrics.write_text(text.replace("\n2,", "\nround two,", 1))
        return f"{metrics} line 3: round"
    if how == "bad config.yaml":
        (run / "config.yaml").write_text("trainer: [\n")
        return f"{run / 'config.yaml'}: cannot be read"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["no metrics.csv", "empty metrics.csv", "header only", "truncated row", "not a number",
     "bad config.yaml"],
)  # fmt: skip
def test_a_damaged_run_is_one_line_naming_the_file(plain_run, how):
    names = damage(plain_run, how)
    code, stdout, stderr = run_in_process(plain_run)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert names in stderr
    assert not (plain_run / "report").exists()


@pytest.mark.parametrize(
    "args, names",
    [
        (["{run}", "--out", "{run}/metrics.csv"], "--out {run}/metrics.csv: cannot create"),
        (["{run}", "--out", "{run}/metrics.csv/figures"], "--out {run}/metrics.csv/figures"),
        (["{run}", "{run}", "--labels", "one"], "--labels: 1 labels for 2 runs"),
        (["{run}", "--labels", "one", "two"], "--labels: 2 labels for 1 runs"),
        (["{run}", "--x", "time"], "--x"),
        (["{run}", "--dpi", "0"], "--dpi"),
        (["{run}/nowhere"], "{run}/nowhere: no such run folder"),
        (["{run}/checkpoints"], "{run}/checkpoints: not a run folder"),
        (["{run}/metrics.csv"], "{run}/metrics.csv: a file; give the run's folder"),
        (["{run}/../.."], "not a run folder (it has no metrics.csv); its newest run is "),
        ([], "runs"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(plain_run, args, names):
    code, stdout, stderr = run_in_process(*(arg.format(run=plain_run) for arg in args))
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert names.format(run=plain_run) in stderr
    assert not list(plain_run.glob("**/*.png"))


def test_missing_matplotlib_is_one_line_naming_the_extra(plain_run, monkeypatch):
    monkeypatch.delitem(sys.modules, "fedrl_lightning.cli.reporting.figures", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, _, stderr = run_in_process(plain_run)
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "matplotlib" in stderr and ".[plot]" in stderr

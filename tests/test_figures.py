"""The figures protocol: goals, statistics, results files, generated docs and fingerprints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import check_figures  # noqa: E402
import protocol  # noqa: E402
import render_figures  # noqa: E402
from held_out import FIGURES  # noqa: E402
from protocol import (  # noqa: E402
    REPORTING_SEEDS,
    TUNING_SEEDS,
    Goal,
    interval_estimates,
    summarize,
    verdict,
)
from scipy.stats import trim_mean  # noqa: E402

RESULTS = sorted(
    p for p in protocol.RESULTS.glob("*.json") if "figure" in json.loads(p.read_text())
)
TABLES = sorted(p for p in protocol.RESULTS.glob("*.json") if "table" in json.loads(p.read_text()))


def seed(value: float, worst: float | None = None, steps: int = 100) -> dict:
    return {"value": value, "worst_agent": value if worst is None else worst, "env_steps": steps}


def test_goal_by_hand():
    goal = Goal("x", iqm=490, seed_worst=475, seeds_needed=9, max_env_steps=150_000)
    assert goal.seed_meets(480.0, 475.0, 150_000)  # the value has no per-seed bound here
    assert not goal.seed_meets(500.0, 474.9, 100)
    assert not goal.seed_meets(500.0, 500.0, 150_001)
    lower = Goal("stays at -200", iqm=-199, seed_value=-199, lower_is_better=True)
    assert lower.seed_meets(-200.0, -200.0, 0)
    assert not lower.seed_meets(-150.0, -200.0, 0)
    assert lower.reaches(-199.0, -199) and not lower.reaches(-198.9, -199)


def test_iqm_is_the_mean_of_the_middle_half_by_hand():
    values = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]
    estimates = interval_estimates(values, reps=2_000)
    # scipy's trim_mean(0.25) on 10 values drops 2 from each end: the mean of 3..8
    assert estimates["iqm"].value == pytest.approx(5.5)
    assert estimates["mean"].value == pytest.approx(5.5)
    for e in estimates.values():
        assert e.low < e.value < e.high
    skewed = interval_estimates([0.0] * 2 + [100.0] * 8, reps=2_000)
    assert skewed["iqm"].value == pytest.approx(100.0)  # the IQM ignores the two outliers
    assert skewed["mean"].value == pytest.approx(80.0)


def test_intervals_are_reproducible_and_narrow_with_the_spread():
    rng = np.random.default_rng(3)
    wide, narrow = rng.normal(0, 10, 10), rng.normal(0, 1, 10)
    assert interval_estimates(wide, reps=2_000) == interval_estimates(wide, reps=2_000)
    w, n = (
        interval_estimates(wide, reps=2_000)["iqm"],
        interval_estimates(narrow, reps=2_000)["iqm"],
    )
    assert (n.high - n.low) < (w.high - w.low)


def test_a_goal_needs_the_iqm_and_enough_seeds():
    goal = Goal("x", iqm=100, seed_value=100, seeds_needed=8)
    seven = [seed(120.0)] * 7 + [seed(90.0)] * 3  # IQM 120 > 100, but 7 seeds of 10
    summary = summarize(seven, goal, reps=2_000)
    assert summary["iqm"]["value"] >= 100 and summary["seeds_meeting_goal"] == 7
    assert summary["goal_met"] is False
    eight = [seed(120.0)] * 8 + [seed(90.0)] * 2
    assert summarize(eight, goal, reps=2_000)["goal_met"] is True
    low = [seed(99.0)] * 2 + [seed(100.0)] * 8  # every seed but two meets; IQM 100
    assert summarize(low, goal, reps=2_000)["goal_met"] is True
    assert "goal_met" not in summarize(eight, None, reps=2_000)


def test_reporting_and_tuning_seeds_are_apart():
    assert len(REPORTING_SEEDS) >= 10
    assert not set(REPORTING_SEEDS) & set(TUNING_SEEDS)
    assert not set(REPORTING_SEEDS) & {42, 43, 44}  # the seeds the configs were tuned on


def test_every_figure_names_a_shipped_config():
    for name, figure in FIGURES.items():
        assert figure.path.exists(), name
        assert figure.topic in render_figures.TOPICS, name


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_results_file_is_complete_and_held_out(path):
    results = json.loads(path.read_text())
    for key in ("commit", "clean", "machine", "cpu", "config_hash", "seeds", "per_seed"):
        assert key in results, key
    assert results["figure"] == path.stem and results["figure"] in FIGURES
    seeds = [s["seed"] for s in results["per_seed"]]
    assert seeds == results["seeds"] and len(seeds) >= 10
    assert not set(seeds) & (set(TUNING_SEEDS) | {42, 43, 44})
    figure = FIGURES[results["figure"]]
    assert results["config_hash"] == protocol.config_hash(figure.path, figure.overrides), (
        f"{path.name} was measured on another version of {figure.config}: re-measure it"
    )
    # the summary is what the per-seed values give (the CIs' bootstrap takes too long here)
    values = np.array([s["value"] for s in results["per_seed"]])
    summary = results["summary"]
    assert summary["iqm"]["value"] == pytest.approx(trim_mean(values, 0.25))
    assert summary["mean"]["value"] == pytest.approx(values.mean())
    for estimate in (summary["iqm"], summary["mean"]):
        assert estimate["low"] <= estimate["value"] <= estimate["high"]
    if figure.goal is not None:
        assert verdict(results["per_seed"], figure.goal, summary["iqm"]["value"]) == {
            k: summary[k] for k in ("seeds_meeting_goal", "goal_met")
        }


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_results_were_measured_on_the_recorded_trajectory(path):
    """A change that moves a config's trajectory must re-measure its figures.

    ``benchmarks/check_figures.py`` notices the move; once the new fingerprint is recorded,
    this fails for every results file measured under the old one.
    """
    results = json.loads(path.read_text())
    config = Path(results["config"]).name
    recorded = check_figures.read_fingerprints()
    kinds = [kind for kind, configs in recorded.items() if config in configs]
    assert kinds, f"no fingerprint is recorded for {config}"
    # the results' machine kind (older files name only the CPU model) may not be this one
    kind = results.get("machine_kind")
    matching = [k for k in kinds if k == kind or (kind is None and k.startswith(results["cpu"]))]
    if not matching:
        pytest.skip(f"{path.name} comes from {results['cpu']}: no fingerprint of that machine")
    assert results["fingerprint"] in {recorded[k][config] for k in matching}, (
        f"{path.name} was measured before {config}'s trajectory moved: re-measure it"
    )


def test_docs_are_what_the_results_generate():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in render_figures.rendered().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run python benchmarks/render_figures.py: {stale} differ"
    pages = {p.name for p in render_figures.PAGES.glob("*.md")}
    expected = {p.name for p in render_figures.rendered() if p.parent == render_figures.PAGES}
    assert pages == expected


def test_fingerprint_is_deterministic_and_sees_a_moved_trajectory(tmp_path, monkeypatch):
    first = check_figures.fingerprint("default.yaml")
    assert check_figures.fingerprint("default.yaml") == first
    moved = tmp_path / "moved.yaml"
    moved.write_text((check_figures.CONFIGS / "default.yaml").read_text() + "\n")
    monkeypatch.setattr(check_figures, "CONFIGS", tmp_path)
    (tmp_path / "default.yaml").write_text(moved.read_text())
    assert check_figures.fingerprint("default.yaml") == first  # a blank line moves nothing
    (tmp_path / "default.yaml").write_text(
        (ROOT / "configs" / "default.yaml")
        .read_text()
        .replace("seed_everything: 42", "seed_everything: 7")
    )
    assert check_figures.fingerprint("default.yaml") != first


def test_check_names_moved_configs_and_other_machines(tmp_path, monkeypatch, capsys):
    store = tmp_path / "fingerprints.json"
    monkeypatch.setattr(check_figures, "FINGERPRINTS", store)
    assert check_figures.check(["default.yaml"]) == 0
    assert "other machine: not comparable" in capsys.readouterr().out
    kind = check_figures.machine_kind()
    store.write_text(json.dumps({kind: {"default.yaml": "0" * 16}}))
    assert check_figures.check(["default.yaml"]) == 1
    assert "default.yaml: MOVED" in capsys.readouterr().out
    check_figures.record(["default.yaml"])
    assert check_figures.check(["default.yaml"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("config", check_figures.shipped_configs())
def test_no_shipped_config_has_moved(config, capsys):
    """The canary: every shipped config's short run is where its fingerprint says.

    Fails for a config whose trajectory a change moved (re-measure its figures, then
    ``python benchmarks/check_figures.py --record``); skipped on a machine with no recorded
    fingerprints, where floats are not comparable. One test a config, so that the configs'
    short runs spread over the workers.
    """
    if check_figures.machine_kind() not in check_figures.read_fingerprints():
        pytest.skip(f"other machine: not comparable ({check_figures.machine_kind()})")
    code = check_figures.check([config])
    out = capsys.readouterr().out
    assert code == 0, out


@pytest.mark.slow
def test_a_figure_end_to_end_on_a_tiny_config(tmp_path):
    """Two seeds through the real command line, measured fresh, summarised and rendered."""
    from held_out import Figure, measure

    figure = Figure(
        "tiny.yaml",
        "control",
        "tiny",
        Goal("IQM >= 0", iqm=0.0, seed_value=0.0, seeds_needed=2),
        episodes=5,
        folder=ROOT / "tests" / "configs",
    )
    results = measure("tiny", figure, [101, 100], 2, tmp_path, None, reps=2_000)
    assert [s["seed"] for s in results["per_seed"]] == [100, 101]
    for record in results["per_seed"]:
        assert record["value"] == pytest.approx(np.mean(record["per_agent"]), abs=1e-3)
        assert record["worst_agent"] == pytest.approx(min(record["per_agent"]), abs=1e-3)
        run = tmp_path / "tiny" / str(record["seed"]) / "lightning_logs" / "version_0"
        rows = (run / "metrics.csv").read_text().splitlines()
        assert record["rounds"] == len(rows) - 1
        assert str(record["env_steps"]) in rows[-1].split(",")
    values = [s["value"] for s in results["per_seed"]]
    assert results["summary"]["mean"]["value"] == pytest.approx(np.mean(values))
    assert results["summary"]["goal_met"] is True  # SimpleEnv's returns are never negative
    assert results["seeds"] == [101, 100] and results["config"] == "tests/configs/tiny.yaml"
    assert results["fingerprint"] == check_figures.fingerprint(figure.path)
    page = render_figures.topic_page("control", [results | {"_file": "tiny.json"}])
    assert "\n## tiny\n" in page and f"{values[0]:.1f}" in page and "**met**" in page


@pytest.mark.parametrize("path", TABLES, ids=[p.stem for p in TABLES])
def test_table_results_are_complete(path):
    results = json.loads(path.read_text())
    for key in ("commit", "clean", "machine", "command", "columns", "rows", "wall_seconds"):
        assert key in results, key
    assert results["table"] == path.stem and results["topic"] in render_figures.TOPICS
    assert all(len(row) == len(results["columns"]) for row in results["rows"])


def test_a_table_is_written_atomically_and_rendered(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "RESULTS", tmp_path)
    table = protocol.TableResults("speed", "Speed", "python benchmarks/x.py", ["run", "time"])
    table.add_row("ours", "1.00 s")
    table.add_row("all", "2.00 s")
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        table.add_row("a", "b", "c")
    table.add_note("a note")
    path = table.write(totals=True)
    assert path == tmp_path / "speed.json" and not list(tmp_path.glob("*.partial"))
    results = json.loads(path.read_text())
    assert results["rows"] == [["ours", "1.00 s"], ["all", "2.00 s"]]
    assert results["commit"] == protocol.provenance()["commit"] and results["wall_seconds"] >= 0
    page = render_figures.table_page(results | {"_file": "speed.json"})
    assert "| ours | 1.00 s |" in page and "| **all** | **2.00 s** |" in page
    assert "a note" in page and "benchmarks/results/speed.json" in page


def test_the_index_names_unmeasured_benchmarks_without_numbers():
    index = (ROOT / "docs" / "figures" / "index.md").read_text()
    unmeasured = index.split("## Not yet measured under the protocol", 1)[1]
    for script in render_figures.NOT_YET_MEASURED:
        assert (ROOT / "benchmarks" / script).is_file(), script
        assert f"`benchmarks/{script}`" in unmeasured
    assert not any(ch.isdigit() for ch in unmeasured.replace("A2C", ""))  # no figures


def test_restamp_records_a_rewritten_config_only_when_its_run_is_unchanged(tmp_path, monkeypatch):
    """``held_out.py --restamp`` changes a results file's config hash only for the same run."""
    import held_out

    name = "simple_conflict_ifca"
    measured = json.loads(protocol.results_path(name).read_text())
    monkeypatch.setattr(protocol, "RESULTS", tmp_path)
    path = protocol.results_path(name)
    figure = FIGURES[name]

    path.write_text(json.dumps(measured))
    assert "nothing to do" in held_out.restamp(name, figure)

    # A run that changed: the fingerprint differs, and the file is left as it was.
    moved = measured | {"config_hash": "0" * 16, "fingerprint": "f" * 16}
    path.write_text(json.dumps(moved))
    assert "re-measure it" in held_out.restamp(name, figure)
    assert json.loads(path.read_text()) == moved

    # The same run under a rewritten config: restamped, the old hash kept, the numbers as they were.
    if check_figures.fingerprint(figure.path) != measured["fingerprint"]:
        pytest.skip("another kind of machine: the recorded fingerprint cannot match here")
    rewritten = measured | {"config_hash": "0" * 16}
    path.write_text(json.dumps(rewritten))
    assert "restamped" in held_out.restamp(name, figure)
    after = json.loads(path.read_text())
    assert after["config_hash"] == measured["config_hash"]
    assert after["restamped"][-1]["from_config_hash"] == "0" * 16
    assert after["per_seed"] == measured["per_seed"] and after["summary"] == measured["summary"]

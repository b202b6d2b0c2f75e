import csv
import random

import pytest
import torch

from fedrl_lightning.run.checkpoints import atomic_save, atomic_write_text, load_checkpoint
from fedrl_lightning.run.metrics_csv import RoundCSVLogger, csv_text
from fedrl_lightning.run.run_folder import RunFolder


class Interrupted(Exception):
    pass


class FailsHalfway:
    """Pickles as half of a payload, then fails: a write cut short by a crash."""

    def __reduce__(self):
        raise Interrupted


def test_a_write_cut_short_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(3)}}, path)
    with pytest.raises(Interrupted):
        atomic_save({"state_dict": {"w": torch.zeros(3)}, "extra": FailsHalfway()}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_run_folder_prepare_removes_what_an_interrupted_write_left(tmp_path):
    run = RunFolder(tmp_path / "version_0")
    run.prepare()
    atomic_write_text("round\n1\n", run.metrics)
    leftovers = [run.checkpoints / ".last.ckpt.123.tmp", run.path / ".metrics.csv.9.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a file")
    run.prepare()
    assert not any(p.exists() for p in leftovers)
    assert run.metrics.read_text() == "round\n1\n"


def test_round_csv_logger_keeps_one_row_per_round(tmp_path):
    path = tmp_path / "version_0" / "metrics.csv"
    path.parent.mkdir()
    logger = RoundCSVLogger(path, rows=[{"round": 1, "reward": 1.0}, {"round": 2, "reward": 2.0}])
    logger.log_metrics({"round": 2, "reward": 20.0}, step=2)  # a redone round replaces its row
    logger.log_metrics({"round": 3, "reward": 3.0, "failed_agents": "4 7"}, step=3)
    logger.save()
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"round": "1", "reward": "1.0", "failed_agents": ""},
        {"round": "2", "reward": "20.0", "failed_agents": ""},
        {"round": "3", "reward": "3.0", "failed_agents": "4 7"},
    ]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.csv"]


def test_round_csv_logger_formats_only_new_rows_and_writes_what_a_whole_rewrite_would(tmp_path):
    """New rows, new columns, fewer columns and redone rounds, in a seeded order."""
    path = tmp_path / "metrics.csv"
    logger = RoundCSVLogger(path, rows=[{"round": 1, "reward": 1.0}])
    rng, rows = random.Random(0), {1: {"round": 1, "reward": 1.0}}
    for _ in range(60):
        step = rng.choice([max(rows) + 1] * 4 + list(rows))  # mostly new rounds, some redone
        row = {"round": step, "reward": rng.random()}
        if rng.random() < 0.2:
            row[f"extra_{rng.randrange(4)}"] = rng.randrange(9)
        if rng.random() < 0.2:
            del row["reward"]
        rows[step] = row
        logger.log_metrics(row, step=step)
        logger.save()
        assert path.read_text() == csv_text([rows[s] for s in sorted(rows)])
    assert logger._formatted_to == max(rows)  # the text of the rows written is kept


def test_new_run_folders_take_the_next_free_version(tmp_path):
    assert RunFolder.newest(tmp_path) is None
    first = RunFolder.create(tmp_path)
    (tmp_path / "lightning_logs" / "version_7").mkdir()
    (tmp_path / "lightning_logs" / "notes").mkdir()
    second = RunFolder.create(tmp_path)
    assert (first.version, second.version) == (0, 8)
    assert RunFolder.newest(tmp_path).path == second.path

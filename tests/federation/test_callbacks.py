"""Federated callbacks: their hooks, and the shipped EarlyStopping and checkpoint callbacks."""

import csv
import tempfile

import pytest
import torch
from conftest import TINY_CONFIG, run_cli

from fedrl_lightning import (
    AgentPopulation,
    BestCheckpoint,
    Callback,
    EarlyStopping,
    FederatedTrainer,
    Reinforce,
    RoundCheckpoint,
)
from fedrl_lightning.errors import ConfigError, FederationError

RUN = "lightning_logs/version_0"


class Recorder(Callback):
    """Records every hook it sees, and keeps a count that it saves and restores."""

    def __init__(self):
        self.calls = []
        self.count = 0

    def setup(self, trainer, model):
        self.calls.append(("setup", trainer.run is None))

    def on_fit_start(self, trainer):
        self.calls.append(("fit_start", trainer.completed_rounds))

    def on_round_start(self, trainer, round_idx):
        self.calls.append(("round_start", round_idx))

    def on_round_end(self, trainer, row):
        self.count += 1
        assert trainer.history[-1] is row
        self.calls.append(("round_end", row["round"]))

    def on_round_saved(self, trainer, round_idx, checkpoint):
        saved = torch.load(checkpoint, weights_only=True)["fedrl"]
        self.calls.append(("round_saved", round_idx, saved["callbacks"]["Recorder"]["count"]))

    def on_fit_end(self, trainer):
        self.calls.append(("fit_end", trainer.completed_rounds))

    def on_exception(self, trainer, exception):
        self.calls.append(("exception", type(exception).__name__))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def simple_fit(num_rounds=4, callbacks=None, root=None, ckpt_path=None, **population):
    population = AgentPopulation(num_agents=3, **population)
    trainer = FederatedTrainer(
        num_rounds=num_rounds,
        agents_per_round=2,
        episodes_per_round=2,
        eval_episodes=2,
        default_root_dir=root or tempfile.mkdtemp(),
        enable_progress_bar=False,
        logger=False,
        callbacks=callbacks,
        seed=7,
    )
    torch.manual_seed(0)
    module = Reinforce.for_population(population, hidden_dim=16)
    return trainer.fit(module, population, ckpt_path=ckpt_path), trainer


def test_hooks_come_in_order_and_the_state_rides_in_every_round_checkpoint(tmp_path):
    recorder = Recorder()
    simple_fit(num_rounds=2, callbacks=[recorder], root=tmp_path)
    assert recorder.calls == [
        ("setup", True),
        ("fit_start", 0),
        ("round_start", 1),
        ("round_end", 1),
        ("round_saved", 1, 1),
        ("round_start", 2),
        ("round_end", 2),
        ("round_saved", 2, 2),
        ("fit_end", 2),
    ]
    resumed = Recorder()
    simple_fit(num_rounds=3, callbacks=[resumed], root=tmp_path, ckpt_path="last")
    assert resumed.calls[1:] == [
        ("fit_start", 2),
        ("round_start", 3),
        ("round_end", 3),
        ("round_saved", 3, 3),  # the count went on from the checkpoint's 2
        ("fit_end", 3),
    ]


def test_a_failing_run_calls_on_exception_not_on_fit_end():
    recorder = Recorder()
    with pytest.raises(FederationError):
        simple_fit(callbacks=[recorder], env_id="faults:Crashing-v0")
    assert recorder.calls[-1] == ("exception", "FederationError")
    assert ("fit_end", 0) not in recorder.calls


def test_two_callbacks_with_one_state_key_are_refused():
    with pytest.raises(ConfigError, match="two callbacks have the state key EarlyStopping"):
        FederatedTrainer(callbacks=[EarlyStopping(patience=1), EarlyStopping(patience=2)])


def reference_rewards():
    rows, _ = simple_fit(num_rounds=12, max_episode_steps=80)
    return [row["eval_reward"] for row in rows]


def stop_round_by_hand(rewards, patience):
    best, wait = None, 0
    for round_idx, value in enumerate(rewards, start=1):
        if best is None or value > best:
            best, wait = value, 0
        else:
            wait += 1
        if wait >= patience:
            return round_idx
    return len(rewards)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stopping_on_patience_stops_where_a_hand_count_does(patience):
    rewards = reference_rewards()
    rows, trainer = simple_fit(
        num_rounds=12, callbacks=[EarlyStopping(patience=patience)], max_episode_steps=80
    )
    stop = stop_round_by_hand(rewards, patience)
    assert stop < 12  # each case does stop early
    assert [row["eval_reward"] for row in rows] == rewards[:stop]
    assert trainer.stop_reason.startswith("EarlyStopping: eval_reward has not improved")


def test_early_stopping_on_a_threshold_stops_at_the_first_round_that_reaches_it():
    rewards = reference_rewards()
    threshold = sorted(rewards)[-3]  # reached at some round, not only at the last
    first = next(i for i, value in enumerate(rewards, start=1) if value >= threshold)
    rows, trainer = simple_fit(
        num_rounds=12,
        callbacks=[EarlyStopping(stopping_threshold=threshold)],
        max_episode_steps=80,
    )
    assert len(rows) == first
    assert (
        trainer.stop_reason == f"EarlyStopping: eval_reward {rewards[first - 1]:g} >= {threshold:g}"
    )
    low, _ = simple_fit(
        num_rounds=12,
        callbacks=[EarlyStopping(monitor="eval_reward", mode="min", stopping_threshold=-1)],
        max_episode_steps=80,
    )
    assert len(low) == 12  # never at most -1: it runs to the end


def test_round_checkpoint_keeps_every_nth_and_the_newest(tmp_path):
    rows, trainer = simple_fit(
        num_rounds=9, callbacks=[RoundCheckpoint(every_n_rounds=2, keep_last=2)], root=tmp_path
    )
    checkpoints = trainer.run.checkpoints
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "best.ckpt",
        "last.ckpt",
        "round-0006.ckpt",
        "round-0008.ckpt",
    ]
    state = torch.load(checkpoints / "round-0008.ckpt", weights_only=True)
    assert state["fedrl"]["round"] == 8
    assert len(rows) == 9


def test_best_checkpoint_keeps_the_best_round_of_its_metric(tmp_path):
    rows, trainer = simple_fit(
        num_rounds=6, callbacks=[BestCheckpoint(monitor="eval_reward_min")], root=tmp_path
    )
    worst = [row["eval_reward_min"] for row in rows]
    best = worst.index(max(worst)) + 1  # the first of equals
    checkpoints = trainer.run.checkpoints
    assert (checkpoints / "best.ckpt").read_bytes() == (
        checkpoints / f"round-{best:04d}.ckpt"
    ).read_bytes()


def test_a_round_whose_copy_a_kill_prevented_gets_it_when_the_run_resumes(tmp_path):
    _, trainer = simple_fit(num_rounds=3, root=tmp_path)
    round_3 = trainer.run.round_checkpoint(3)
    round_3.unlink()  # killed after last.ckpt was written, before its copy
    simple_fit(num_rounds=3, root=tmp_path, ckpt_path="last")
    assert round_3.read_bytes() == trainer.run.last_checkpoint.read_bytes()


def read_metrics(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        del row["round_time"]
    return rows


@pytest.mark.slow
def test_an_early_stopped_run_stays_stopped_and_continues_with_more_rounds(tmp_path):
    """The CLI: stop on a threshold, resume it as it was, then with more rounds."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    whole.mkdir(), stopped.mkdir()
    whole_run = run_cli("fit", "--config", str(TINY_CONFIG), "--trainer.num_rounds", "8", cwd=whole)
    assert whole_run.returncode == 0, whole_run.stderr
    rewards = [float(row["eval_reward"]) for row in read_metrics(whole / RUN / "metrics.csv")]
    threshold = max(rewards[:5])
    first = rewards.index(threshold) + 1
    stop = ["--trainer.callbacks+", "EarlyStopping"]
    stop += ["--trainer.callbacks.stopping_threshold", str(threshold)]
    tiny = ["--config", str(TINY_CONFIG), "--trainer.num_rounds", "6"]

    result = run_cli("fit", *tiny, *stop, cwd=stopped)

    assert result.returncode == 0, result.stderr
    assert f"Stopped after round {first} of 6: EarlyStopping: eval_reward" in result.stdout
    assert len(read_metrics(stopped / RUN / "metrics.csv")) == first
    # Resumed as it was (as after a kill just past the stop), it stays stopped.
    again = run_cli("fit", "--ckpt_path", "last", cwd=stopped)
    assert again.returncode == 0, again.stderr
    assert f"Finished 0 rounds (resumed after round {first})" in again.stdout
    assert f"Stopped after round {first} of 6" in again.stdout
    # With more rounds it goes on, and stops again at the next round that meets the threshold.
    more = run_cli("fit", "--ckpt_path", "last", "--trainer.num_rounds", "8", cwd=stopped)
    assert more.returncode == 0, more.stderr
    later = [i for i in range(first + 1, 9) if rewards[i - 1] >= threshold]
    done = later[0] if later else 8
    assert f"Finished {done - first} round" in more.stdout
    assert len(read_metrics(stopped / RUN / "metrics.csv")) == done
    rest = run_cli("fit", "--ckpt_path", "last", "--trainer.callbacks", "[]", cwd=stopped)
    assert rest.returncode == 0, rest.stderr
    assert read_metrics(stopped / RUN / "metrics.csv") == read_metrics(whole / RUN / "metrics.csv")
    last = "checkpoints/last.ckpt"
    for key, value in torch.load(whole / RUN / last, weights_only=True)["state_dict"].items():
        assert torch.equal(
            torch.load(stopped / RUN / last, weights_only=True)["state_dict"][key], value
        )

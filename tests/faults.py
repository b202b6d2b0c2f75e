"""Failures on purpose, for the tests of failing agents and of stopping runs.

``faults:Crashing-v0`` is an environment whose every step raises. ``faults:Endless-v0`` is
SimpleEnv with no time limit: it never terminates, and its native vector version takes no step
limit. So that a broken cap fails a test instead of eating the machine, both raise once an
episode passes ``RUNAWAY_STEPS``. ``faults:Slow-v0`` is SimpleEnv, with the same trajectories,
slowed down by environment variables, which reach Ray's workers too and leave the run's config
alone: ``FAULTS_STEP_DELAY`` seconds of sleep per step; ``FAULTS_STEPPED``, a file that a step
creates if it is missing, also while it hangs; and ``FAULTS_STALL_AFTER``, a file from whose
creation on every step hangs, as a stuck simulator does; and ``FAULTS_FITS``, a folder in
which every seeded reset (a local fit's first) writes a file named after its seed, saying on
which Ray node and in which process it ran. ``faults:LongEpisode-v0`` is the same
with a time limit of 10**9 steps. ``FlakyModule`` fails some local fits: it raises, returns NaN
weights, ends its process (a lost Ray worker) or hangs, with given probabilities drawn from
torch's generator, which each local fit seeds from (run seed, round, agent). Ending the process
and hanging are only for the Ray executor.
"""

import os
import time
from pathlib import Path

import gymnasium as gym
import torch

from fedrl_lightning import Reinforce
from fedrl_lightning.population.envs.simple import SimpleEnv, SimpleVectorEnv


class CrashingEnv(SimpleEnv):
    def step(self, action: object) -> tuple:
        raise RuntimeError("injected crash in step")


gym.register("Crashing-v0", entry_point=CrashingEnv, max_episode_steps=100)


RUNAWAY_STEPS = 10_000


class EndlessEnv(SimpleEnv):
    def reset(self, **kwargs: object) -> tuple:
        self.steps = 0
        return super().reset(**kwargs)

    def step(self, action: object) -> tuple:
        self.steps += 1
        if self.steps > RUNAWAY_STEPS:
            raise RuntimeError(f"an episode ran past {RUNAWAY_STEPS} steps")
        return super().step(action)


class EndlessVectorEnv(SimpleVectorEnv):
    """Takes no ``max_episode_steps``, so it cannot cap its own episodes."""

    def __init__(self, num_envs: int = 1, noise_scale: float = 0.1, drift: float = 0.0) -> None:
        super().__init__(num_envs, noise_scale, drift, max_episode_steps=RUNAWAY_STEPS + 1)

    def step(self, actions: object) -> tuple:
        if self._elapsed.max() >= RUNAWAY_STEPS:
            raise RuntimeError(f"an episode ran past {RUNAWAY_STEPS} steps")
        return super().step(actions)


gym.register("Endless-v0", entry_point=EndlessEnv, vector_entry_point=EndlessVectorEnv)


def record_fit(seed: int) -> None:
    """Write ``FAULTS_FITS/<seed>``: the Ray node id (``none`` outside Ray) and the pid."""
    import ray

    context = ray.get_runtime_context() if ray.is_initialized() else None
    node = context.get_node_id() if context is not None else "none"
    path = Path(os.environ["FAULTS_FITS"], str(seed))
    partial = path.with_suffix(".tmp")
    partial.write_text(f"{node} {os.getpid()}")
    os.replace(partial, path)  # whoever polls the folder sees whole records only


class SlowEnv(SimpleEnv):
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        if seed is not None and os.environ.get("FAULTS_FITS"):
            record_fit(seed)
        return super().reset(seed=seed, options=options)

    def step(self, action: object) -> tuple:
        stepped = os.environ.get("FAULTS_STEPPED")
        stall_after = os.environ.get("FAULTS_STALL_AFTER")
        while True:  # a stalled step recreates FAULTS_STEPPED within a millisecond
            if stepped and not os.path.exists(stepped):
                open(stepped, "a").close()
            if not (stall_after and os.path.exists(stall_after)):
                break
            time.sleep(0.001)
        time.sleep(float(os.environ.get("FAULTS_STEP_DELAY", "0")))
        return super().step(action)


gym.register("Slow-v0", entry_point=SlowEnv, max_episode_steps=100)
gym.register("LongEpisode-v0", entry_point=SlowEnv, max_episode_steps=10**9)


class FlakyModule(Reinforce):
    def __init__(
        self,
        crash_prob: float = 0.0,
        nan_prob: float = 0.0,
        exit_prob: float = 0.0,
        hang_prob: float = 0.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.poison = False

    def on_train_start(self) -> None:
        draw = torch.rand(()).item()
        bounds = torch.tensor(
            [self.hparams[k] for k in ("crash_prob", "nan_prob", "exit_prob", "hang_prob")]
        ).cumsum(0)
        if draw < bounds[0]:
            raise RuntimeError("injected crash in the local fit")
        self.poison = draw < bounds[1]
        if bounds[1] <= draw < bounds[2]:
            os._exit(1)
        if bounds[2] <= draw < bounds[3]:
            time.sleep(3600)

    def on_train_end(self) -> None:
        if self.poison:
            with torch.no_grad():
                self.policy.head.weight.fill_(float("nan"))

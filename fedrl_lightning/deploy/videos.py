"""MP4 videos of a policy acting in chosen agents' environments, through gymnasium's RecordVideo."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo
from typing_extensions import override

from fedrl_lightning.errors import ConfigError
from fedrl_lightning.extras import missing_extra
from fedrl_lightning.policy.networks import MLPPolicy
from fedrl_lightning.population.agents import AgentPopulation
from fedrl_lightning.rollouts.evaluation import EpisodeSeeds
from fedrl_lightning.rollouts.rollout import rollout_episode

__all__ = ["EveryFrameRecordVideo", "check_recordable", "record_videos", "video_name"]


class EveryFrameRecordVideo(RecordVideo):
    """gymnasium's ``RecordVideo``, writing every captured frame, atomically.

    ``RecordVideo`` captures the frame after the reset and after every step, then hands them
    to moviepy, whose 2.x releases drop the last frame whenever ``frames / fps`` rounds down
    (11 frames at 50 fps make a 10-frame file). This writes the frames with the ffmpeg that
    moviepy itself uses (``imageio-ffmpeg``), one video frame per captured frame, to a hidden
    file that is renamed into place once complete.
    """

    @override
    def stop_recording(self) -> None:
        frames, name = self.recorded_frames, self._video_name
        if frames:
            import imageio_ffmpeg

            path = Path(self.video_folder) / f"{name}.mp4"
            partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.mp4")
            height, width = np.asarray(frames[0]).shape[:2]  # rgb_array frames: arrays
            writer = imageio_ffmpeg.write_frames(
                str(partial), (width, height), fps=self.frames_per_sec, macro_block_size=2
            )
            try:
                writer.send(None)
                for frame in frames:
                    writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
                writer.close()
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        self.recorded_frames = []
        self.recording = False
        self._video_name = None


def check_recordable(population: AgentPopulation) -> None:
    """Refuse an environment that cannot render ``rgb_array`` frames, or a missing moviepy.

    Raises:
        ConfigError: Naming ``--record_video``.
    """
    env = population.make_env(0)
    try:
        modes = list(env.metadata.get("render_modes", []))
    finally:
        env.close()
    if "rgb_array" not in modes:
        raise ConfigError(
            f"--record_video: {population.env_id} cannot render frames (its render modes are "
            f"{modes or 'none'}; rgb_array is needed)"
        )
    if importlib.util.find_spec("moviepy") is None:
        raise missing_extra("--record_video", "moviepy", "video")


def video_name(agent: int, episode: int) -> str:
    """The file name of agent ``agent``'s video of its ``episode``-th recorded episode."""
    return f"agent-{agent}-episode-{episode}.mp4"


def record_videos(
    policy: MLPPolicy,
    population: AgentPopulation,
    agents: Sequence[int],
    folder: Path,
    seed: int,
    deterministic: bool = False,
    episodes: int = 1,
) -> list[Path]:
    """Record ``episodes`` episodes of each agent in ``agents`` as ``agent-K-episode-N.mp4``.

    The episodes are each agent's first evaluation episodes under ``seed`` (the same reset
    seeds as :func:`~fedrl_lightning.rollouts.evaluation.evaluate_agents`), so with
    ``deterministic`` actions a video shows exactly an evaluated episode. A video holds the
    frame after the reset and one after every step.

    Args:
        policy: The policy that acts.
        population: The agents' environments.
        agents: Which agents to record, by id.
        folder: Where the MP4 files go; created if missing.
        seed: The evaluation seed.
        deterministic: Take the most likely action, or the Gaussian's mean.
        episodes: Episodes to record per agent.

    Returns:
        The video files, in order.

    Raises:
        ConfigError: If the environment cannot render frames, moviepy is missing, or the
            folder cannot be written.
    """
    check_recordable(population)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--record_video {folder}: cannot create it ({err.strerror})") from None
    # Frames are drawn off-screen: pygame (CartPole's renderer) needs no display for them.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    written: list[Path] = []
    seeds = EpisodeSeeds.fresh(seed)
    for agent in agents:
        env = _recording_env(population, agent, folder)
        rng = np.random.default_rng(seeds.action_seed(agent))
        try:
            for reset_seed in seeds.env_seeds([agent], episodes):
                rollout_episode(env, policy.actor(), rng, reset_seed, deterministic)
        finally:
            env.close()  # the last episode's video is written on close
        written += [folder / video_name(agent, i) for i in range(episodes)]
    return written


def _recording_env(population: AgentPopulation, agent: int, folder: Path) -> gym.Env:
    """Agent ``agent``'s environment, recording every episode into ``folder``."""
    env = population.make_env(agent, render_mode="rgb_array")
    with warnings.catch_warnings():  # the folder may hold other videos: they are kept
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
        return EveryFrameRecordVideo(
            env,
            video_folder=str(folder),
            name_prefix=f"agent-{agent}",
            episode_trigger=lambda _: True,
            disable_logger=True,
        )

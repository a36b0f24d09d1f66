"""Training callbacks SB3 lacks here: a plain ``tqdm`` progress bar (SB3's needs ``rich``)
and a rollout-video recorder writing one evaluation episode as an ``.mp4``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from freeaction_gym.agents.envs import last_frame


class TqdmCallback(BaseCallback):
    """A progress bar over the environment steps of one ``learn()`` call."""

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        total = self.locals["total_timesteps"] - self.model.num_timesteps
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def record_episode(model, env, deterministic: bool = True, max_steps: int = 10_000) -> dict:
    """Run one episode of ``model`` in env 0 of a (H, W, C) VecEnv: ``frames`` uint8
    (T+1, H, W, 3) (the last one from ``terminal_observation``), ``return``, ``success``."""
    obs = env.reset()
    frames = [last_frame(obs[0])]
    total, success = 0.0, False
    for _ in range(max_steps):
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, reward, done, info = env.step(action)
        total += float(reward[0])
        success |= bool(info[0].get("is_success", info[0].get("success", False)))
        if done[0]:
            frames.append(last_frame(info[0].get("terminal_observation", obs[0])))
            break
        frames.append(last_frame(obs[0]))
    return {"frames": np.stack(frames).astype(np.uint8), "return": total, "success": success}


class VideoRecorderCallback(BaseCallback):
    """Every ``video_freq`` environment steps (and at the end of training) write one episode
    of the current policy to ``{video_dir}/{name_prefix}_{num_timesteps}.mp4``.

    ``env``: a VecEnv with channel-last image observations (its env 0 is used; reset here).
    The episode's return and success are logged as ``video/return``, ``video/success``."""

    def __init__(
        self,
        env,
        video_dir: str | Path,
        video_freq: int,
        fps: int = 10,
        name_prefix: str = "rollout",
        deterministic: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.env, self.video_dir, self.video_freq = env, Path(video_dir), video_freq
        self.fps, self.name_prefix, self.deterministic = fps, name_prefix, deterministic
        self._last = 0
        self.paths: list[Path] = []

    def _on_step(self) -> bool:
        if self.video_freq > 0 and self.num_timesteps - self._last >= self.video_freq:
            self._record()
        return True

    def _on_training_end(self) -> None:
        if self._last != self.num_timesteps:
            self._record()

    def _record(self) -> None:
        import imageio.v2 as imageio

        self._last = self.num_timesteps
        ep = record_episode(self.model, self.env, self.deterministic)
        self.video_dir.mkdir(parents=True, exist_ok=True)
        path = self.video_dir / f"{self.name_prefix}_{self.num_timesteps}.mp4"
        imageio.mimsave(path, list(ep["frames"]), fps=self.fps, macro_block_size=1)
        self.paths.append(path)
        self.logger.record("video/return", ep["return"])
        self.logger.record("video/success", float(ep["success"]))
        if self.verbose:
            print(f"video: {path} (return {ep['return']:.2f}, success {ep['success']})")

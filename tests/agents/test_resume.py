"""``agents.train --resume``: a run interrupted after a snapshot continues from it - the
networks, the replay buffer (Box and Dict observations) and the step count carry over,
checkpoints keep their true step names, and the wall time counts both parts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from freeaction_gym.agents.resume import ResumeCallback, load_buffer, resume_state, save_buffer
from freeaction_gym.agents.train import TrainArgs, train

ACTION = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
IMAGE = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
DICT = gym.spaces.Dict({"image": IMAGE, "proprio": gym.spaces.Box(-1, 1, (4,), np.float32)})
TINY_DRQ = {
    "learning_starts": 8, "batch_size": 8, "buffer_size": 500,
    "policy_kwargs": {"features_extractor_kwargs": {"features_dim": 8, "channels": [8],
                                                    "strides": [2]}, "net_arch": [16]},
}  # fmt: skip


def filled(space, n: int, size: int = 10):
    buffer = (DictReplayBuffer if isinstance(space, gym.spaces.Dict) else ReplayBuffer)(
        size, space, ACTION, device="cpu"
    )
    rng = np.random.default_rng(n)
    for _ in range(n):
        obs, nxt = space.sample(), space.sample()
        if isinstance(obs, dict):
            obs, nxt = ({k: v[None] for k, v in o.items()} for o in (obs, nxt))
        else:
            obs, nxt = obs[None], nxt[None]
        done = rng.random(1) < 0.2
        buffer.add(obs, nxt, ACTION.sample()[None], rng.normal(size=1), done, [{}])
    return buffer


@pytest.mark.parametrize("space", [IMAGE, DICT], ids=["box", "dict"])
@pytest.mark.parametrize("n", [6, 13])  # part full / wrapped around (size 10)
def test_buffer_round_trip(space, n, tmp_path):
    src = filled(space, n)
    save_buffer(src, tmp_path / "b.npz")
    dst = filled(space, 0)
    load_buffer(dst, tmp_path / "b.npz")
    assert (dst.pos, dst.full) == (src.pos, src.full) and dst.size() == min(n, 10)
    for name in ("observations", "next_observations", "actions", "rewards", "dones"):
        a, b = getattr(src, name), getattr(dst, name)
        for x, y in zip(*(list(v.values()) if isinstance(v, dict) else [v] for v in (a, b)),
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(x[: dst.size()], y[: dst.size()])
    other = ReplayBuffer(10, gym.spaces.Box(0, 255, (3, 4, 4), np.uint8), ACTION, device="cpu")
    if space is IMAGE:
        with pytest.raises(ValueError, match="observations has shape"):
            load_buffer(other, tmp_path / "b.npz")


def drq_args(tiny, out, timesteps: int, **kw) -> TrainArgs:
    env = {"model": str(tiny.world_dir), "reward": "none", "max_episode_steps": 6,
           "sampling": {"scheduler": "ddim", "num_steps": 1}}  # fmt: skip
    return TrainArgs(
        env="FreeActionMetaWorldV2-v0", algo="drq", timesteps=timesteps, num_envs=1, out=str(out),
        env_kwargs=env, hp=dict(TINY_DRQ), layouts="test", eval_freq=0, video_freq=0,
        checkpoint_freq=10, resume_every=10, progress=False, verbose=0, **kw,
    )  # fmt: skip


def test_interrupted_run_resumes_from_its_snapshot(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    save = ResumeCallback.save

    def interrupt_at_20(self):
        save(self)
        if self.num_timesteps >= 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(ResumeCallback, "save", interrupt_at_20)
    with pytest.raises(KeyboardInterrupt):
        train(drq_args(tiny, out, 30))
    monkeypatch.undo()
    state = resume_state(out)
    assert state["steps"] == 20 and [s for s, _ in state["history"]] == [10.0, 20.0]
    assert set(state["files"]) == {"model.zip", "buffer.npz"}
    from stable_baselines3 import SAC

    at_20 = SAC.load(out / "resume" / "model.zip", device="cpu")
    summary = train(drq_args(tiny, out, 30, resume=True))

    assert summary["resumed_at"] == 20 and summary["timesteps"] == 30
    assert summary["replay_transitions"] == 30  # the 20 before the interruption + 10 after
    assert sorted(p.name for p in (out / "checkpoints").glob("*.zip")) == [
        "drq_10_steps.zip", "drq_20_steps.zip", "drq_30_steps.zip"
    ]  # fmt: skip
    steps, seconds = zip(*summary["seconds_history"], strict=True)
    assert steps == (10.0, 20.0, 30.0) and all(np.diff(seconds) > 0)
    assert summary["seconds"] == pytest.approx(seconds[-1]) and seconds[1] == state["seconds"]
    final = SAC.load(out / "final_model.zip", device="cpu")
    assert final._n_updates > at_20._n_updates  # continued: more updates than the snapshot
    start, end = at_20.policy.state_dict(), final.policy.state_dict()
    assert any(not torch.equal(start[k], end[k]) for k in start)
    assert not (out / "resume" / "buffer.npz").exists()  # finished: the big files are gone
    assert resume_state(out)["steps"] == 30

    with pytest.raises(ValueError, match="finished run"):  # nothing left to resume
        train(drq_args(tiny, out, 40, resume=True))

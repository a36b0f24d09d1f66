"""``score_head``: what a learned reward head credits kept rollout frames with, scored in
chunks (the loop's evaluation logs it on the real frames as ``head_on_real_*``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.dyna.evaluate import score_head
from freeaction_gym.evaluation.worlds import Rollouts
from freeaction_gym.rewards.learned import LearnedReward, RewardHead

N, T = 3, 5


def one_failure_head(src, frames: np.ndarray, out) -> str:
    """The tiny head with its success bias moved between the two lowest per-episode peak
    logits over ``frames`` (after frame 0): one episode fails, the others succeed."""
    head = RewardHead.from_pretrained(src)
    with torch.no_grad():
        x = torch.from_numpy(frames[:, 1:]).flatten(0, 1)
        _, logit = head.forward_normalized(x, torch.zeros(len(x), dtype=torch.long))
        peaks = logit.reshape(len(frames), -1).max(dim=1).values.sort().values
        head.mlp[-1].bias[1] -= (peaks[0] + peaks[1]) / 2
    return str(head.save_pretrained(out))


def test_score_head_matches_per_frame_scoring_across_chunks(tiny, tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N, T + 1, tiny.hw, tiny.hw, 3), dtype=np.uint8)
    frames[0] //= 4  # episodes that differ in brightness, so the head tells them apart
    zeros = np.zeros((N, T), np.float32)
    roll = Rollouts(None, zeros, zeros.astype(bool), np.zeros((N, T, 4), np.float32), frames)
    head_dir = one_failure_head(tiny.reward_head, frames, tmp_path / "head")
    head = LearnedReward.from_pretrained(head_dir)
    task = head.head.config.tasks[0]
    reward, success = [], []
    for i in range(N):  # one episode per call, frames after each action (frame 0 is not)
        r, s = head(torch.from_numpy(frames[i, 1:]), None, None, torch.zeros(T, dtype=torch.long))
        reward.append(r.numpy())
        success.append(s.numpy().any())
    truth = np.array([True, False, True])
    # 4 frames per call: chunks straddle episode boundaries
    got = score_head(head_dir, task, roll, truth, batch=4)
    assert got["return"] == pytest.approx(float(np.sum(reward, axis=1).mean()), abs=0.051)
    assert got["success"] == pytest.approx(float(np.mean(success)))
    assert got["agrees_with_real_success"] == pytest.approx(
        float(np.mean(np.array(success) == truth))
    )
    assert set(got) == {"return", "success", "agrees_with_real_success"}
    assert 0 < sum(success) < N  # both outcomes occur, so the success numbers are tested
    # a loaded head scores the same as its directory (dyna_frames loads each head once)
    assert score_head(head, task, roll, truth, batch=4) == got

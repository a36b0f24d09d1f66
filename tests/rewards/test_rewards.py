"""Reward functions, the learned reward head and its trainer (tiny synthetic data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from freeaction_gym.data.episodes import FORMAT_VERSION, write_episode, write_json_atomic
from freeaction_gym.rewards import (
    CallableReward,
    GoalLatentReward,
    LearnedReward,
    RewardFunction,
    RewardHead,
    RewardHeadConfig,
    ZeroReward,
)
from freeaction_gym.training.supervised import learning_rate
from freeaction_gym.training.train_reward_head import (
    FrameSampler,
    auroc,
    main,
    random_shift,
    reward_success_metrics,
)

TINY = dict(channels=(8, 16), hidden=32, task_dim=4)


def batch(b: int = 5, h: int = 64, w: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=g)
    latents = torch.randn(b, 4, h // 8, w // 8, generator=g)
    goal = torch.randn(b, 4, h // 8, w // 8, generator=g)
    task_ids = torch.randint(0, 3, (b,), generator=g)
    return frames, latents, goal, task_ids


# ----------------------------------------------------------------------------- head


def test_head_shapes_units_and_size():
    head = RewardHead(RewardHeadConfig(reward_mean=3.0, reward_std=2.0)).eval()
    assert sum(p.numel() for p in head.parameters()) < 300_000
    frames, _, _, task_ids = batch(5)
    with torch.no_grad():
        reward, logit = head(frames, task_ids)
        r_norm, logit2 = head.forward_normalized(frames, task_ids)
    assert reward.shape == logit.shape == (5,) and reward.dtype == torch.float32
    torch.testing.assert_close(reward, r_norm * 2.0 + 3.0)
    torch.testing.assert_close(logit, logit2)
    with torch.no_grad():  # any frame size works (adaptive pooling before the MLP)
        r, s = head(batch(2, 48, 40)[0], torch.tensor([0, 2]))
    assert r.shape == s.shape == (2,)
    with pytest.raises(ValueError, match="task_ids"):
        head(frames, task_ids[:2])
    with pytest.raises(KeyError, match="unknown"):
        head.task_id("door-open-v3")


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(tasks=["a", "b", "c"], reward_std=4.0, **TINY)).eval()
    head.save_pretrained(tmp_path / "head")
    loaded = RewardHead.from_pretrained(tmp_path / "head")
    assert loaded.config == head.config and not loaded.training
    frames, _, _, task_ids = batch(4)
    with torch.no_grad():
        for a, b in zip(head(frames, task_ids), loaded(frames, task_ids), strict=True):
            assert torch.equal(a, b)
    (tmp_path / "head" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        RewardHead.from_pretrained(tmp_path / "head")
    with pytest.raises(FileNotFoundError, match="config.json"):
        RewardHead.from_pretrained(tmp_path / "nowhere")


def test_learned_reward_thresholds_head_probability():
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(**TINY))
    frames, latents, goal, task_ids = batch(8)
    with torch.no_grad():
        reward, logit = head.eval()(frames, task_ids)
    for threshold in (0.3, 0.5, 0.7):
        r, s = LearnedReward(head, threshold)(frames, latents, None, task_ids)
        assert r.dtype == torch.float32 and s.dtype == torch.bool
        torch.testing.assert_close(r, reward)
        assert torch.equal(s, torch.sigmoid(logit) > threshold)
    with pytest.raises(ValueError, match="success_threshold"):
        LearnedReward(head, 1.5)


# ----------------------------------------------------------------------------- interface


def test_goal_latent_reward_matches_direct_computation():
    frames, latents, goal, task_ids = batch(6)
    d = np.mean((latents.numpy() - goal.numpy()) ** 2, axis=(1, 2, 3))
    threshold = float(np.median(d))
    r, s = GoalLatentReward(scale=2.5, success_distance=threshold)(frames, latents, goal, task_ids)
    np.testing.assert_allclose(r.numpy(), -2.5 * d, rtol=1e-5)
    assert r.dtype == torch.float32 and s.dtype == torch.bool
    np.testing.assert_array_equal(s.numpy(), d < threshold)
    r0, s0 = GoalLatentReward()(frames, goal, goal, task_ids)
    assert torch.all(r0 == 0) and torch.all(s0)
    with pytest.raises(ValueError, match="goal latents"):
        GoalLatentReward()(frames, latents, None, task_ids)
    with pytest.raises(ValueError, match="shape"):
        GoalLatentReward()(frames, latents, goal[:, :2], task_ids)


def test_callable_reward_validates_outputs():
    frames, latents, goal, task_ids = batch(3)
    ok = CallableReward(lambda f, z, g, t: (torch.ones(3, dtype=torch.float64), t > 0))
    r, s = ok(frames, latents, goal, task_ids)
    assert r.dtype == torch.float32 and torch.equal(s, task_ids > 0)
    cases = [
        (lambda *a: torch.zeros(3), TypeError, "must return"),
        (lambda *a: (np.zeros(3), torch.zeros(3, dtype=bool)), TypeError, "torch.as_tensor"),
        (lambda *a: (torch.zeros(3, 1), torch.zeros(3, dtype=bool)), ValueError, r"shape \(3, 1\)"),
        (lambda *a: (torch.zeros(3), torch.zeros(2, dtype=bool)), ValueError, r"shape \(2,\)"),
        (
            lambda *a: (torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=bool)),
            TypeError,
            "float dtype",
        ),
        (lambda *a: (torch.zeros(3), torch.zeros(3)), TypeError, "torch.bool"),
        (
            lambda *a: (torch.full((3,), float("nan")), torch.zeros(3, dtype=bool)),
            ValueError,
            "non-finite",
        ),
    ]
    for fn, err, match in cases:
        with pytest.raises(err, match=match):
            CallableReward(fn, name="mine")(frames, latents, goal, task_ids)
    with pytest.raises(TypeError, match="callable"):
        CallableReward(3)


def test_zero_reward_and_protocol():
    frames, latents, goal, task_ids = batch(4)
    r, s = ZeroReward()(frames, latents, None, task_ids)
    assert torch.equal(r, torch.zeros(4)) and not s.any() and s.dtype == torch.bool
    head = RewardHead(RewardHeadConfig(**TINY))
    fns = [ZeroReward(), GoalLatentReward(), LearnedReward(head), CallableReward(print)]
    assert all(isinstance(f, RewardFunction) for f in fns)


# ----------------------------------------------------------------------------- metrics


def test_auroc_hand_case_and_mann_whitney():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of the 4 pairs are ordered -> 0.75
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5  # a tie counts half
    assert auroc(np.array([0.2, 0.9]), np.array([1, 0])) == 0.0
    assert np.isnan(auroc(np.array([0.2, 0.9]), np.array([1, 1])))
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.random(200) + labels * 0.4, 1)  # rounding makes ties
    u = mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert auroc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()))


def test_reward_success_metrics_hand_case():
    success = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    prob = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.3, 0.4])  # TP 2, FN 1, FP 1, TN 4
    m = reward_success_metrics(
        np.array([1.0, 2, 3, 4, 5, 6, 7, 9]), np.arange(1.0, 9), prob, success
    )
    assert m["reward_mae"] == pytest.approx(1 / 8)
    assert m["reward_pearson"] == pytest.approx(
        np.corrcoef([1, 2, 3, 4, 5, 6, 7, 9], np.arange(1, 9))[0, 1]
    )
    assert m["success_accuracy"] == pytest.approx(6 / 8)
    assert m["success_precision"] == pytest.approx(2 / 3)
    assert m["success_recall"] == pytest.approx(2 / 3)
    assert m["success_balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_random_shift_matches_edge_padded_crop():
    frames, *_ = batch(4, 8, 6)
    gen = torch.Generator().manual_seed(1)
    out = random_shift(frames, 2, gen)
    dy, dx = torch.randint(0, 5, (2, 4), generator=torch.Generator().manual_seed(1))
    padded = np.pad(frames.numpy(), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for i in range(4):
        ref = padded[i, dy[i] : dy[i] + 8, dx[i] : dx[i] + 6]
        np.testing.assert_array_equal(out[i].numpy(), ref)
    assert random_shift(frames, 0, gen) is frames


# ----------------------------------------------------------------------------- training


def square_dataset(root, size: int = 24, actions: int = 16, episodes=(16, 2, 4)) -> None:
    """Two tasks; each frame shows a bright 4x4 square at a random place. Task "left": reward
    = column of the square, success = square in the left half; task "right": mirrored."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION, "generator": "test"})
    for split, n in zip(("train", "val", "test"), episodes, strict=True):
        for task in ("left", "right"):
            for e in range(n):
                rgb = np.full((actions + 1, size, size, 3), 20, np.uint8)
                ys, xs = rng.integers(0, size - 4, (2, actions + 1))
                for k in range(actions + 1):
                    rgb[k, ys[k] : ys[k] + 4, xs[k] : xs[k] + 4] = 230
                cx = xs[1:] + 2.0  # square centre in frames 1..T (the labelled frames)
                left = cx < size / 2
                write_episode(
                    root / split / f"{task}_{e:05d}.npz",
                    dict(
                        rgb=rgb,
                        action=np.zeros((actions, 4), np.float32),
                        reward=(cx if task == "left" else size - cx).astype(np.float32),
                        success=left if task == "left" else ~left,
                        layout=0,
                        seed=e,
                        task=task,
                    ),
                )


def test_training_learns_synthetic_task(tmp_path):
    square_dataset(tmp_path / "data")
    common = [
        "--data",
        str(tmp_path / "data"),
        "--batch-size",
        "32",
        "--lr",
        "3e-3",
        "--shift",
        "0",
        "--channels",
        "8",
        "16",
        "16",
        "--hidden",
        "32",
    ]
    assert (
        main(common + ["--out", str(tmp_path / "run"), "--steps", "400", "--eval-every", "100"])
        == 0
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test = metrics["test"]
    assert test["success_balanced_accuracy"] > 0.9, test
    assert test["success_auroc"] > 0.95, test
    assert test["reward_pearson"] > 0.9, test
    assert set(test["per_task"]) == {"left", "right"}
    head = RewardHead.from_pretrained(tmp_path / "run")
    assert head.tasks == ["left", "right"]

    # same seed -> same weights
    for name in ("a", "b"):
        main(common + ["--out", str(tmp_path / name), "--steps", "15", "--eval-every", "5"])
    a, b = (RewardHead.from_pretrained(tmp_path / n).state_dict() for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_schedule_follows_steps_or_time():
    assert learning_rate(0, 1.0, 1000, 100) == pytest.approx(0.01)  # warm-up
    assert learning_rate(99, 1.0, 1000, 100) == pytest.approx(1.0)
    assert learning_rate(1000, 1.0, 1000, 100) == pytest.approx(0.1)  # decayed at the end
    assert learning_rate(200, 1.0, 1000, 100, time_frac=1.2) == pytest.approx(0.1)  # out of time


def test_frame_sampler_oversamples_matching_episodes():
    """950 base frames, 50 of 'collected' episodes: share 0.5 draws half the batch from the
    50 (each of them), share 0 is uniform and draws exactly what ``torch.randint`` did
    before the option existed (so seeded runs are unchanged)."""
    stems = np.array(["reach-v3_00003"] * 950 + ["reach-v3_100000"] * 50, dtype=object)
    pattern = r".+_[1-9][0-9]{5,}"
    n = 20_000
    half = FrameSampler(stems, pattern, 0.5)
    assert half.matches == 50
    idx = half(n, torch.Generator().manual_seed(0)).numpy()
    assert idx.dtype == np.int64 and idx.shape == (n,) and idx.min() >= 0 and idx.max() < 1000
    assert abs((idx >= 950).mean() - 0.5) < 0.02
    assert set(idx[idx >= 950]) == set(range(950, 1000))  # every matching frame is drawn

    uniform = FrameSampler(stems, None, 0.0)
    draws = uniform(n, torch.Generator().manual_seed(1))
    assert torch.equal(
        draws, torch.randint(0, 1000, (n,), generator=torch.Generator().manual_seed(1))
    )
    assert abs((draws.numpy() >= 950).mean() - 0.05) < 0.01
    # nothing matches, or everything does: uniform ("no effect")
    assert FrameSampler(stems, r"nothing", 0.5).pools is None
    assert FrameSampler(stems, r"reach-v3_.*", 0.5).pools is None
    with pytest.raises(ValueError, match="oversample_share must be in"):
        FrameSampler(stems, pattern, 1.0)


def test_trainer_cli_refuses_a_share_out_of_range(tmp_path):
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--oversample-share", "1.5"])

"""Agents: smoke runs of ``python -m agents.train`` / ``agents.evaluate`` (subprocesses,
tiny budgets) on a tiny world model built here and on the real MetaWorld env, plus unit
tests of the hyperparameter files, the feature extractor and the bootstrap CI (checked
against scipy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.evaluate import bootstrap_ci
from freeaction_gym.agents.config import hyperparams_file, load_hyperparams, parse_assignments
from freeaction_gym.agents.policies import SmallCNN, policy_kwargs_from_config

REPO = Path(__file__).resolve().parents[2]
HW = 32
TINY_HP = {
    "ppo": {
        "n_envs": 1,
        "n_steps": 16,
        "batch_size": 16,
        "n_epochs": 1,
        "policy_kwargs": {
            "features_extractor": "small_cnn",
            "features_extractor_kwargs": {"features_dim": 16, "channels": [8, 8]},
            "net_arch": [16],
        },
    },
    "sac": {
        "n_envs": 1,
        "buffer_size": 256,
        "learning_starts": 16,
        "batch_size": 16,
        "policy_kwargs": {
            "features_extractor": "small_cnn",
            "features_extractor_kwargs": {"features_dim": 16, "channels": [8, 8]},
            "net_arch": [16],
        },
    },
}


def make_world(root: Path, hw: int) -> Path:
    """A tiny pixel-space world model of hw x hw frames with a reset bank of random frames
    (no MetaWorld layouts: a real env given this model draws layouts itself)."""
    from freeaction_gym.envs.bank import ResetBank
    from freeaction_gym.models import VideoDiT, dit_config
    from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel

    torch.manual_seed(0)
    cfg = dit_config(
        "tiny", input_size=(hw, hw), in_channels=3, patch_size=hw // 4, num_frames=3, action_dim=4
    )
    stats = {
        "mu_act": {"mean_step_l2": {"raw": {"1": 0.9}}},
        "action_mean": [0.0] * 4,
        "action_std": [1.0] * 4,
    }
    world = WorldModel(
        VideoDiT(cfg), PixelCodec(), DiffusionConfig(prediction_type="sample"), stats
    )
    d = world.save_pretrained(root)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, hw, hw, 3), dtype=np.uint8)
    tasks = np.array(["reach-v3", "push-v3"] * 2)
    ResetBank(frames, frames[::-1].copy(), tasks, np.array(["e"] * 4)).save(d / "reset_bank.npz")
    return d


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("agents_world") / "world", HW)


@pytest.fixture(scope="module")
def tiny_hp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hp") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_HP))
    return path


def imagined_kwargs(world: Path) -> list[str]:
    return [
        f"model={world}",
        "reward=goal_latent",
        "max_episode_steps=6",
        "sampling.scheduler=ddim",
        "sampling.num_steps=2",
    ]


def run(module: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_WAIT_POLICY": "PASSIVE",
        "FREEACTION_THREADS": "1",
        "MUJOCO_GL": "osmesa",
        "PYOPENGL_PLATFORM": "osmesa",
    }
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def report(proc: subprocess.CompletedProcess) -> dict:
    text = ok(proc).stdout
    return json.loads(text[text.index("{") :])


# -- training smoke runs --------------------------------------------------------------------


def test_train_ppo_in_imagination_then_evaluate(tiny_world, tiny_hp, tmp_path):
    import imageio.v2 as imageio

    out = tmp_path / "ppo"
    summary = report(
        run(
            "agents.train",
            "--env", "FreeActionMetaWorldV2-v0",
            "--algo", "ppo",
            "--timesteps", "32",
            "--num-envs", "1",
            "--out", str(out),
            "--hyperparams", str(tiny_hp),
            "--hp", "frame_stack=2", "normalize_reward=true",
            "--env-kwargs", *imagined_kwargs(tiny_world), "task=reach-v3",
            "--layouts", "test",  # the tiny model's own bank: random frames, no layouts
            "--eval-freq", "16",
            "--eval-episodes", "1",
            "--checkpoint-freq", "16",
            "--video-freq", "16",
            "--verbose", "0",
        )
    )  # fmt: skip
    assert summary["timesteps"] == 32 and summary["algo"] == "ppo"
    config = json.loads((out / "train_config.json").read_text())
    assert config["hyperparams"]["normalize_reward"] is True  # VecNormalize + mirrored eval env
    for name in ("final_model.zip", "best_model.zip", "train_config.json", "logs/progress.csv"):
        assert (out / name).is_file(), name
    assert list((out / "logs").glob("events.out.tfevents.*"))
    assert len(list((out / "checkpoints").glob("ppo_*_steps.zip"))) == 2
    assert (out / "eval" / "evaluations.npz").is_file()
    videos = sorted((out / "videos").glob("*.mp4"))
    assert videos
    frames = np.stack(list(imageio.mimread(videos[0])))
    assert frames.shape[1:] == (HW, HW, 3) and 2 <= len(frames) <= 7  # reset + <= 6 steps

    res = report(
        run(
            "agents.evaluate",
            "--env", "FreeActionMetaWorldV2-v0",
            "--policy", str(out / "final_model.zip"),
            "--episodes", "2",
            "--env-kwargs", *imagined_kwargs(tiny_world), "task=reach-v3",
            "--out", str(tmp_path / "eval.json"),
        )
    )  # fmt: skip
    assert res["episodes"] == 2 and len(res["per_episode"]) == 2
    assert json.loads((tmp_path / "eval.json").read_text()) == res
    lo, hi = res["return_ci"]
    assert lo <= res["return_mean"] <= hi


def test_train_sac_in_imagination(tiny_world, tiny_hp, tmp_path):
    out = tmp_path / "sac"
    summary = report(
        run(
            "agents.train",
            "--env", "FreeActionMetaWorldV2-v0",
            "--algo", "sac",
            "--timesteps", "24",
            "--out", str(out),
            "--hyperparams", str(tiny_hp),
            "--env-kwargs", *imagined_kwargs(tiny_world),
            "--layouts", "test",
            "--eval-freq", "0",
            "--checkpoint-freq", "0",
            "--video-freq", "0",
            "--no-progress",
            "--verbose", "0",
        )
    )  # fmt: skip
    assert summary["timesteps"] == 24
    from agents.evaluate import load_model

    model = load_model(out / "final_model.zip")  # algo inferred from the zip
    assert type(model).__name__ == "SAC"


def test_train_ppo_on_the_real_env(tiny_hp, tmp_path):
    pytest.importorskip("metaworld")
    out = tmp_path / "real"
    summary = report(
        run(
            "agents.train",
            "--env", "FreeActionRealMetaWorldReach-v0",
            "--timesteps", "16",
            "--out", str(out),
            "--hyperparams", str(tiny_hp),
            "--env-kwargs", "max_episode_steps=5",
            "--eval-freq", "0",
            "--checkpoint-freq", "0",
            "--video-freq", "0",
            "--no-progress",
            "--verbose", "0",
        )
    )  # fmt: skip
    assert summary["timesteps"] == 16 and (out / "final_model.zip").is_file()
    # trained on the rendered train layouts, checked against the env's held-out bank
    layouts = summary["layouts"]["train_env"]
    assert layouts["split"] == "train" and layouts["layout_seeds"] == [0]
    assert layouts["checked_disjoint"] and layouts["entries"] == 50
    assert (out / "train_layouts.npz").is_file()


def test_train_in_imagination_evaluate_in_reality(tiny_hp, tmp_path):
    """A 64x64 world model (the real env's frames): periodic evaluation, videos and the
    final evaluation run in the real simulator."""
    pytest.importorskip("metaworld")
    import imageio.v2 as imageio

    world = make_world(tmp_path / "world64", 64)
    out = tmp_path / "sim2real"
    ok(
        run(
            "agents.train",
            "--env", "FreeActionMetaWorldV2-v0",
            "--timesteps", "32",
            "--out", str(out),
            "--hyperparams", str(tiny_hp),
            "--env-kwargs", *imagined_kwargs(world), "task=reach-v3",
            "--eval-env", "FreeActionRealMetaWorldReach-v0",
            "--eval-env-kwargs", "max_episode_steps=3",
            "--eval-freq", "16",
            "--eval-episodes", "1",
            "--checkpoint-freq", "0",
            "--video-freq", "32",
            "--no-progress",
            "--verbose", "0",
        )
    )  # fmt: skip
    frames = np.stack(list(imageio.mimread(out / "videos" / "ppo_32.mp4")))
    assert frames.shape == (4, 64, 64, 3)  # reset + 3 real steps
    layouts = json.loads((out / "train_config.json").read_text())["summary"]["layouts"]
    assert layouts["train_env"]["layout_seeds"] == [0]  # rendered train layouts
    assert layouts["eval_env"]["split"] == "test" and layouts["eval_env"]["layout_seeds"] == [1000]
    res = report(
        run(
            "agents.evaluate",
            "--env", "FreeActionRealMetaWorldReach-v0",
            "--policy", str(out / "best_model.zip"),
            "--episodes", "1",
            "--env-kwargs", "max_episode_steps=3",
        )
    )  # fmt: skip
    assert res["per_episode"][0]["length"] <= 3


# -- evaluation ------------------------------------------------------------------------------


def test_evaluate_random_policy_in_imagination(tiny_world):
    res = report(
        run(
            "agents.evaluate",
            "--env", "FreeActionMetaWorldV2-v0",
            "--policy", "random",
            "--episodes", "3",
            "--num-envs", "2",
            "--env-kwargs", *imagined_kwargs(tiny_world),
        )
    )  # fmt: skip
    assert res["episodes"] == 3
    assert all(ep["length"] <= 6 for ep in res["per_episode"])
    assert 0.0 <= res["success_rate"] <= 1.0


def test_evaluate_expert_on_the_real_env():
    pytest.importorskip("metaworld")
    res = report(
        run(
            "agents.evaluate",
            "--env", "FreeActionRealMetaWorldReach-v0",
            "--policy", "expert:0.05",
            "--episodes", "2",
        )
    )  # fmt: skip
    assert res["episodes"] == 2 and res["success_rate"] == 1.0
    assert res["success_rate_ci"] == [1.0, 1.0]
    assert all(ep["task"] == "reach-v3" and ep["length"] < 40 for ep in res["per_episode"])


def test_expert_policy_needs_the_real_env(tiny_world):
    proc = run(
        "agents.evaluate",
        "--env", "FreeActionMetaWorldV2-v0",
        "--policy", "expert:0.1",
        "--env-kwargs", *imagined_kwargs(tiny_world), "task=reach-v3",
    )  # fmt: skip
    assert proc.returncode != 0 and "true simulator state" in proc.stderr


# -- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0, 1, 1, 0, 1, 1, 1, 0], np.linspace(-3, 5, 25) ** 2])
def test_bootstrap_ci_matches_scipy(values):
    from scipy.stats import bootstrap

    lo, hi = bootstrap_ci(values, n_resamples=20_000, seed=1)
    ref = bootstrap(
        (np.asarray(values, float),),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        random_state=2,
    ).confidence_interval
    spread = np.std(values) / np.sqrt(len(values))
    assert lo == pytest.approx(ref.low, abs=0.1 * spread)
    assert hi == pytest.approx(ref.high, abs=0.1 * spread)
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)


def test_hyperparams_files_and_overrides():
    hp_dir = REPO / "freeaction_gym" / "agents" / "hyperparams"
    assert hyperparams_file("FreeActionMetaWorld-v0") == hp_dir / "FreeActionMetaWorld-v0.yaml"
    assert hyperparams_file("FreeActionMetaWorldPush-v0").name == "FreeActionMetaWorld-v0.yaml"
    real = hyperparams_file("FreeActionRealMetaWorldPickPlace-v0")
    assert real.name == "FreeActionRealMetaWorld-v0.yaml"
    with pytest.raises(FileNotFoundError, match="--hyperparams"):
        hyperparams_file("FreeActionRT1-v0")
    for env_id in ("FreeActionMetaWorld-v0", "FreeActionRealMetaWorld-v0"):
        for algo in ("ppo", "sac"):
            hp = load_hyperparams(env_id, algo)
            assert hp.n_timesteps >= 1000 and hp.policy == "CnnPolicy"
            policy_kwargs_from_config(hp.policy_kwargs)
    hp = load_hyperparams(
        "FreeActionMetaWorldReach-v0",
        "ppo",
        overrides=parse_assignments(["n_steps=8", "policy_kwargs.net_arch=[8]", "gamma=0.9"]),
    )
    assert hp.algo_kwargs["n_steps"] == 8 and hp.algo_kwargs["gamma"] == 0.9
    assert hp.policy_kwargs["net_arch"] == [8]
    assert hp.policy_kwargs["features_extractor"] == "small_cnn"  # merged, not replaced
    assert hp.normalize_reward is True and "normalize_reward" not in hp.algo_kwargs
    assert load_hyperparams("FreeActionMetaWorld-v0", "sac").normalize_reward is False
    lr = hp.algo_kwargs["learning_rate"]  # lin_3e-4
    assert lr(1.0) == pytest.approx(3e-4) and lr(0.5) == pytest.approx(1.5e-4)
    assert parse_assignments(["model=/a/b", "sampling.num_steps=2"]) == {
        "model": "/a/b",
        "sampling": {"num_steps": 2},
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["model"])


@pytest.mark.parametrize("hw", [32, 64])
def test_small_cnn_on_small_frames(hw):
    import gymnasium as gym

    space = gym.spaces.Box(0, 255, (6, hw, hw), np.uint8)  # channel-first, 2 stacked frames
    net = SmallCNN(space, features_dim=32)
    assert net(torch.rand(5, 6, hw, hw)).shape == (5, 32)
    with pytest.raises(ValueError, match="at least"):
        SmallCNN(gym.spaces.Box(0, 255, (3, 8, 8), np.uint8))
    kw = policy_kwargs_from_config({"features_extractor": "small_cnn", "activation_fn": "tanh"})
    assert kw["features_extractor_class"] is SmallCNN and kw["activation_fn"] is torch.nn.Tanh

"""``freeaction bundle`` (``freeaction_gym.bundle``) on a tiny prompt world model, reward head,
proprio model and a 4-episode dataset with robot state: the weights are stored as float16 and
load back as the originals rounded to float16, the reset bank is ``ResetBank.from_dataset``'s,
the demo episodes are the dataset's, reward_head/ and proprio/ are copies (proprio/ gives the
source model's outputs), a ``conditioning: vap`` env runs on the bundle alone, a wrong part
fails before anything is written and re-bundling replaces proprio/; the command needs
``--out``, refuses a non-empty one without ``--force`` and never writes into the package.
A latent-codec model's bundle carries its vae/ (float16) and predicts the source model's
frames."""

from __future__ import annotations

import filecmp
import json
import re
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from freeaction_gym.bundle import PACKAGE_DIR, export_bundle, main
from freeaction_gym.cli import main as freeaction
from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    load_episode,
    write_episode,
    write_json_atomic,
)
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from freeaction_gym.models.checkpoint import CheckpointError
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel, ProprioState, integrate
from freeaction_gym.rewards.learned import RewardHead, RewardHeadConfig
from freeaction_gym.world_model import DiffusionConfig, SamplingConfig, WorldModel

HW, A = 32, 4
STEPS = 42  # actions per episode: more than the 40 that save_demo_episodes keeps
TEST_EPISODES = {"push-v3": 1, "reach-v3": 3}  # demo keeps 2 per task: push 0, reach 0, reach 1


@dataclass(frozen=True)
class Sources:
    """What a bundle is made of, and the bundle the CLI made of it."""

    model: Path
    data: Path
    reward_head: Path
    proprio: Path
    bundle: Path


def write_dataset(root: Path, arm_pose: tuple[np.ndarray, np.ndarray], seed: int = 0) -> Path:
    """Test episodes with per-frame state and keypoints (the conftest ``arm_pose`` drifting up
    to 1 cm per frame), one of them successful from action 10 on."""
    arm_keypoints, arm_state = arm_pose
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION})
    for task, count in TEST_EPISODES.items():
        for i in range(count):
            drift = np.cumsum(rng.uniform(-0.01, 0.01, (STEPS + 1, 1, 3)), 0).astype(np.float32)
            keypoints = arm_keypoints[None] + drift  # (T+1, K, 3)
            state = np.repeat(arm_state[None], STEPS + 1, 0)
            state[:, :3] = keypoints[:, 4]  # the hand
            write_episode(
                root / "test" / f"{task}_{i:05d}.npz",
                {
                    "rgb": rng.integers(0, 256, (STEPS + 1, HW, HW, 3), dtype=np.uint8),
                    "action": rng.uniform(-1, 1, (STEPS, A)).astype(np.float32),
                    "reward": np.zeros(STEPS, np.float32),
                    "success": np.arange(STEPS) >= (10 if i == 1 else STEPS),
                    "layout": np.array(i),
                    "seed": np.array(i),
                    "task": np.array(task),
                    "state": state,
                    "keypoints": keypoints,
                },
            )
    return root


def moving_proprio(seed: int = 2, hidden: int = 32) -> ProprioModel:
    """A "trained" pose model: the keypoints move with the actions (same seed, same model)."""
    torch.manual_seed(seed)
    proprio = ProprioModel(ProprioConfig(hidden=hidden, depth=2))
    with torch.no_grad():
        proprio.mlp[-1].weight.normal_(0.0, 2e-3, generator=torch.Generator().manual_seed(seed))
    return proprio.eval()


@pytest.fixture(scope="module")
def src(tmp_path_factory, tiny_prompt_world, arm_pose) -> Sources:
    root = tmp_path_factory.mktemp("bundle")
    world = tiny_prompt_world(prompt="controlnet", controlnet_depth=2)  # no exact zeros
    model = world.save_pretrained(root / "run" / "model")
    data = write_dataset(root / "data", arm_pose)
    head = RewardHead(
        RewardHeadConfig(tasks=list(TEST_EPISODES), channels=(8, 8), pool_size=2, task_dim=4,
                         hidden=16)
    )  # fmt: skip
    reward_head = head.save_pretrained(root / "run" / "reward_head")
    proprio = moving_proprio().save_pretrained(root / "run" / "proprio")
    bundle = root / "bundle"
    argv = ["--model", str(model), "--data", str(data), "--reward-head", str(reward_head)]
    assert main([*argv, "--proprio", str(proprio), "--out", str(bundle)]) == 0
    return Sources(model, data, reward_head, proprio, bundle)


def same_tree(a: Path, b: Path) -> bool:
    """Same file names and bytes (one level, as the small models' directories)."""
    names = sorted(p.name for p in a.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return names == sorted(p.name for p in b.iterdir()) and not mismatch and not errors


def test_weights_are_float16_and_load_back_as_the_originals(src):
    stored = load_file(str(src.bundle / "model.safetensors"))
    original = load_file(str(src.model / "model.safetensors"))
    assert stored.keys() == original.keys()
    assert {v.dtype for v in stored.values()} == {torch.float16}
    meta = json.loads((src.bundle / "config.json").read_text())
    source_meta = json.loads((src.model / "config.json").read_text())
    assert meta.pop("weights_dtype") == "float16" and meta == source_meta

    loaded = WorldModel.from_pretrained(src.bundle).dit.state_dict()
    for name, value in original.items():
        assert loaded[name].dtype == torch.float32  # upcast on load
        torch.testing.assert_close(loaded[name], value, rtol=1e-3, atol=1e-7)
        assert torch.equal(loaded[name], value.half().float())  # exactly the fp16 rounding


def test_reset_bank_is_the_datasets(src):
    bank = ResetBank.load(src.bundle / "reset_bank.npz")
    want = ResetBank.from_dataset(src.data, "test")
    assert len(bank) == 4 and bank.has_robot_state
    for name in ("initial", "goal", "task", "episode", "layout", "state", "keypoints"):
        np.testing.assert_array_equal(getattr(bank, name), getattr(want, name), err_msg=name)
    first = load_episode(src.data / "test" / "push-v3_00000.npz")
    np.testing.assert_array_equal(bank.initial[0], first.rgb[0])
    np.testing.assert_array_equal(bank.state[0], first.state[0])


def test_demo_episodes_are_the_datasets_first_per_task(src):
    with np.load(src.bundle / "demo_episodes.npz") as z:
        demo = {k: z[k] for k in z.files}
    assert set(demo) == {"rgb", "action", "success", "task"}
    assert demo["rgb"].dtype == np.uint8 and demo["rgb"].shape == (3, 41, HW, HW, 3)
    assert demo["action"].dtype == np.float32 and demo["action"].shape == (3, 40, A)
    assert demo["success"].dtype == bool and demo["success"].shape == (3, 40)
    assert demo["task"].tolist() == ["push-v3", "reach-v3", "reach-v3"]
    for i, name in enumerate(["push-v3_00000", "reach-v3_00000", "reach-v3_00001"]):
        ep = load_episode(src.data / "test" / f"{name}.npz")
        np.testing.assert_array_equal(demo["rgb"][i], ep.rgb[:41])
        np.testing.assert_array_equal(demo["action"][i], ep.action[:40])
        np.testing.assert_array_equal(demo["success"][i], ep.success[:40])
    assert demo["success"][2, 10:].all() and not demo["success"][2, :10].any()


def test_reward_head_and_proprio_are_copies(src):
    assert same_tree(src.bundle / "reward_head", src.reward_head)
    assert same_tree(src.bundle / "proprio", src.proprio)
    RewardHead.from_pretrained(src.bundle / "reward_head")
    copy = ProprioModel.from_pretrained(src.bundle / "proprio")
    source = ProprioModel.from_pretrained(src.proprio)
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(5, copy.config.pose_dim, generator=g)
    s = ProprioState(pose, torch.randn(pose.shape, generator=g) * 0.01, pose[:, :3] + 0.01)
    action = torch.rand(5, A, generator=g) * 2 - 1
    with torch.no_grad():
        a, b = copy.step(s, action), source.step(s, action)
    assert torch.equal(a.pose, b.pose) and torch.equal(a.mocap, b.mocap)
    assert not torch.allclose(a.pose, s.pose)  # the model does move the pose


def test_vap_env_runs_on_the_bundle_alone(src):
    env = gym.make(
        "FreeActionMetaWorldV2-v0", model=str(src.bundle), reward="none", conditioning="vap",
        sampling={"scheduler": "ddim", "num_steps": 2},
    )  # fmt: skip
    obs, _ = env.reset(seed=0, options={"bank_index": 2})
    assert obs.shape == (HW, HW, 3) and obs.dtype == np.uint8
    action = np.random.default_rng(0).uniform(-1, 1, A).astype(np.float32)
    obs, _, _, _, info = env.step(action)
    assert obs.shape == (HW, HW, 3)
    assert info["robot_state"].shape == (7,)
    # integrated from the bank's robot state by the bundled proprio model
    bank = ResetBank.load(src.bundle / "reset_bank.npz")
    proprio = ProprioModel.from_pretrained(src.proprio)
    states, _ = integrate(proprio, bank.state[2:3], bank.keypoints[2:3], action[None, None])
    np.testing.assert_allclose(info["robot_state"], states[0, 1], atol=1e-6)


WRONG_PARTS = {  # id: (argument, directory given, error, message naming the directory)
    "proprio-missing": ("proprio", "nowhere", FileNotFoundError, "proprio model directory {} "),
    "proprio-empty": ("proprio", "empty", FileNotFoundError,
                      "proprio model directory {} lacks model.safetensors, config.json"),
    "proprio-is-reward-head": ("proprio", "reward_head", CheckpointError,
                               "{}/config.json is not a ProprioModel config"),
    "reward-head-missing": ("reward_head", "nowhere", FileNotFoundError,
                            "reward head directory {} "),
    "reward-head-is-proprio": ("reward_head", "proprio", CheckpointError,
                               "{}/config.json is not a RewardHead config"),
}  # fmt: skip


@pytest.mark.parametrize("case", WRONG_PARTS)
def test_a_wrong_part_fails_before_anything_is_written(src, tmp_path, case):
    part, given, error, message = WRONG_PARTS[case]
    path = {"reward_head": src.reward_head, "proprio": src.proprio}.get(given, tmp_path / given)
    if given == "empty":
        path.mkdir()
    out = tmp_path / "out" / "bundle"
    with pytest.raises(error, match=re.escape(message.format(path))):
        export_bundle(src.model, src.data, out, **{part: path})
    assert not (tmp_path / "out").exists()


def test_rebundling_replaces_proprio(src, tmp_path):
    out = tmp_path / "bundle"
    export_bundle(src.model, src.data, out, proprio=src.proprio)
    (out / "proprio" / "stale.txt").write_text("from an old bundle")
    other = moving_proprio(seed=5, hidden=8).save_pretrained(tmp_path / "other_proprio")
    export_bundle(src.model, src.data, out, proprio=other)
    assert same_tree(out / "proprio", other)  # stale.txt gone
    assert ProprioModel.from_pretrained(out / "proprio").config.hidden == 8
    export_bundle(src.model, src.data, out, proprio=out / "proprio")  # in place: kept
    assert same_tree(out / "proprio", other)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "demo_episodes.npz", "model.safetensors", "proprio", "reset_bank.npz"
    ]  # fmt: skip


def test_bundle_needs_out_and_never_writes_into_the_package(monkeypatch, capsys):
    """Issue 38: ``--out`` used to default to ``freeaction_gym/assets/metaworld_default``
    (relative to the cwd), so a bare ``freeaction bundle`` in a checkout overwrote the
    packaged model."""
    monkeypatch.chdir(PACKAGE_DIR.parent)  # a checkout's root, where that default pointed
    packaged = PACKAGE_DIR / "assets" / "metaworld_default" / "model.safetensors"
    before = packaged.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err
    new_dir = PACKAGE_DIR / "assets" / "a_new_bundle"
    for out in ("freeaction_gym/assets/metaworld_default", str(new_dir)):
        assert freeaction(["bundle", "--out", out, "--force"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "installed freeaction_gym package" in err, err
    assert packaged.stat().st_mtime_ns == before and not new_dir.exists()


def test_bundle_refuses_a_non_empty_folder_without_force(src, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a bundle")
    argv = ["bundle", "--model", str(src.model), "--data", str(src.data), "--out", str(out)]
    assert freeaction(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not empty" in err and "--force" in err, err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert freeaction([*argv, "--force"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "notes.txt").is_file()


def latent_world(seed: int = 0) -> WorldModel:
    """A tiny latent-codec world model: a 2x-down VAE (4 latent channels, 16x16 latents of the
    32x32 frames, scale 0.5) under a 3-frame DiT whose adaLN / final layer are not zero."""
    torch.manual_seed(seed)
    vae = VideoAutoencoder.from_config(
        AutoencoderConfig(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=4,
                          sample_size=HW, scaling_factor=0.5)
    )  # fmt: skip
    dit = VideoDiT(
        dit_config("tiny", input_size=(HW // 2, HW // 2), in_channels=4, patch_size=4,
                   num_frames=3, action_dim=A)
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    stats = {"mu_act": {"mean_step_l2": {"raw": {"2": 1.0}}}}
    return WorldModel(dit, vae, DiffusionConfig(), stats).eval()


def predict_frames(world: WorldModel, frames: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """uint8 frames (B, 2, H, W, 3) the model predicts after ``frames`` (B, H, W, 3) given
    ``actions`` (B, 2, A): fixed initial noise (seed 0), 2 DDIM steps."""
    sampling = SamplingConfig.from_dict({"scheduler": "ddim", "num_steps": 2})
    with torch.no_grad():
        context = world.encode(torch.from_numpy(frames)[:, None])  # (B, 1, C, h, w)
        z, _ = world.predict(
            context, torch.from_numpy(actions), sampling, torch.Generator().manual_seed(0)
        )
        return world.decode(z).numpy()


def test_latent_model_bundle_carries_its_vae_and_predicts_the_same_frames(src, tmp_path):
    model = latent_world().save_pretrained(tmp_path / "latent_model")
    out = export_bundle(model, src.data, tmp_path / "bundle")
    stored = load_file(str(out / "vae" / "diffusion_pytorch_model.safetensors"))
    original = load_file(str(model / "vae" / "diffusion_pytorch_model.safetensors"))
    assert stored.keys() == original.keys()
    assert {v.dtype for v in stored.values()} == {torch.float16}  # the bundle's dtype
    for name, value in original.items():
        assert torch.equal(stored[name], value.half()), name

    source, bundled = WorldModel.from_pretrained(model), WorldModel.from_pretrained(out)
    assert isinstance(bundled.codec, VideoAutoencoder)
    assert bundled.codec.scaling_factor == 0.5
    assert {p.dtype for p in bundled.parameters()} == {torch.float32}  # upcast on load
    bank = ResetBank.load(out / "reset_bank.npz")
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (len(bank), 2, A)).astype(np.float32)
    want = predict_frames(source, bank.initial, actions)
    got = predict_frames(bundled, bank.initial, actions)
    assert want.shape == got.shape == (len(bank), 2, HW, HW, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05, (diff.max(), diff.mean())
    assert np.abs(want.astype(int) - bank.initial[:, None].astype(int)).mean() > 5  # not a copy
    # the reference with every weight rounded to float16 by hand gives the bundle's frames
    rounded = latent_world()
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    np.testing.assert_array_equal(predict_frames(rounded, bank.initial, actions), got)

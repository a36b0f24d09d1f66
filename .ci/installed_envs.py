"""Make, reset and step every registered id from a non-editable install (CI, issue 13).

Run by ``.ci/run`` with a throwaway venv's python, from a directory outside the repo, after
``pip install <wheel>[metaworld]``. The MetaWorld ids run the bundled model and the real
simulator; the IRASim ids (RT-1, Bridge, Language-Table) first must explain what they need
without paths, then run on a tiny IRASim-format checkpoint, SDXL-like VAE and reset bank
written here (as ``tests/conftest.py`` builds them). Also ``gym.make_vec`` and the
stable-baselines3 VecEnv. Prints one line per id and ``N passed, 0 failed``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import freeaction_gym
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.vector import make_sb3_vec_env
from freeaction_gym.models import irasim_dit
from freeaction_gym.models.autoencoder import AutoencoderConfig, VideoAutoencoder

IRASIM = {"FreeActionRT1-v0": "rt1", "FreeActionBridge-v0": "bridge"}
IRASIM |= {"FreeActionLanguageTable-v0": "languagetable"}
HW = (64, 80)  # tiny IRASim frames: 8x VAE -> 8x10 latents


def tiny_irasim(root: Path, dataset: str) -> dict:
    """gym.make kwargs of a tiny IRASim-format checkpoint (+ VAE and bank) for ``dataset``."""
    torch.manual_seed(0)
    dit = irasim_dit("tiny", dataset, input_size=(8, 10), num_frames=4)
    args = {"model": "IRASim-tiny", "dataset": dataset, "extras": 3, "num_frames": 4}
    args |= {"video_size": list(HW), "mask_frame_num": 1}
    ckpt = root / f"{dataset}_0000001.pt"
    torch.save({"ema": dit.state_dict(), "args": args}, ckpt)
    vae = VideoAutoencoder.from_config(
        AutoencoderConfig(
            block_out_channels=(8, 8, 8, 8),
            norm_num_groups=4,
            latent_channels=4,
            sample_size=64,
            scaling_factor=0.13025,
        )
    )
    vae.save_pretrained(root / "vae")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 2, *HW, 3), dtype=np.uint8)
    bank = ResetBank(frames[0], frames[1], np.array([dataset] * 2), np.array(["a", "b"]))
    bank.save(root / f"{dataset}_bank.npz")
    return dict(
        model=str(ckpt),
        vae=str(root / "vae"),
        reset_bank=str(root / f"{dataset}_bank.npz"),
        action_chunk=3,
        sampling={"scheduler": "ddim", "num_steps": 2},
    )


def make_reset_step(env_id: str, **kwargs) -> str:
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs), env_id
    for _ in range(2):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward), env_id
        assert {"success", "is_success"} <= set(info), env_id
    env.close()
    return f"obs {obs.shape} {obs.dtype}, reward {reward:.3f}"


def main() -> int:
    package = Path(freeaction_gym.__file__).resolve()
    assert "site-packages" in package.parts, f"not the installed package: {package}"
    print(f"freeaction_gym from {package.parent}")
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in (*freeaction_gym.ENV_IDS, *freeaction_gym.REAL_ENV_IDS):
            kwargs = {}
            if env_id in IRASIM:
                try:
                    gym.make(env_id)
                    raise AssertionError(f"{env_id} made without a checkpoint")
                except FileNotFoundError as err:
                    assert "Bringing IRASim checkpoints" in str(err), err
                root = Path(tmp) / IRASIM[env_id]
                root.mkdir()
                kwargs = tiny_irasim(root, IRASIM[env_id])
            print(f"{env_id}: {make_reset_step(env_id, **kwargs)}", flush=True)
            passed += 1
    venv = gym.make_vec("FreeActionMetaWorld-v0", num_envs=2)
    venv.reset(seed=0)
    assert venv.step(venv.action_space.sample())[0].shape == (2, 64, 64, 3)
    sb3 = make_sb3_vec_env(2, preset="FreeActionMetaWorldPush-v0", seed=0)
    sb3.reset()
    sb3.step_async(np.zeros((2, 4), np.float32))
    assert sb3.step_wait()[0].shape == (2, 64, 64, 3)
    print("make_vec and the SB3 VecEnv step")
    passed += 2
    print(f"{passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

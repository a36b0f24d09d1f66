"""Shared test fixtures.

Tiny artifacts built once per session in tmp dirs: a pixel-space world-model directory
(with reset bank and reward head), IRASim-layout ``.pt`` checkpoints (RT-1 and
Language-Table action layouts), a tiny diffusers VAE and a 64x80 reset bank.

Nothing here reads the bundled model or downloads anything.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.models import VideoDiT, dit_config, irasim_dit
from freeaction_gym.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel
from freeaction_gym.rewards.learned import RewardHead, RewardHeadConfig
from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel

MW_HW = 32  # tiny world model frame size (pixel codec)
MW_ACTION_DIM = 4
MU_ACT = 0.9  # stats["mu_act"]["mean_step_l2"]["raw"]["1"]
TASKS = ["reach-v3", "push-v3", "pick-place-v3"]  # the MetaWorld presets pick each
IRASIM_HW = (64, 80)  # frames of the IRASim-layout envs (8x VAE -> 8x10 latents)
FAST = {"scheduler": "ddim", "num_steps": 2}


def perturb(model: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    """Replace the zero init of adaLN modulation and the final layer (adaLN-Zero makes a
    fresh DiT output exactly zero) so predictions depend on the inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def make_bank(n: int, hw: tuple[int, int], seed: int) -> ResetBank:
    """``n`` random-but-seeded frames (and goals) cycling through TASKS."""
    rng = np.random.default_rng(seed)
    initial = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    goal = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    task = np.array([TASKS[i % len(TASKS)] for i in range(n)])
    return ResetBank(initial, goal, task, np.array([f"ep{i}.npz" for i in range(n)]))


# An arm at rest near MetaWorld's hand_init_pos (0, 0.6, 0.2): shoulder, elbow, forearm, wrist,
# hand, right and left finger pads (m); the state is hand xyz, opening, object xyz.
ARM_KEYPOINTS = np.array(
    [[0.0, 0.25, 0.35], [0.0, 0.4, 0.35], [0.0, 0.5, 0.3], [0.0, 0.6, 0.28], [0.0, 0.6, 0.2],
     [0.02, 0.6, 0.15], [-0.02, 0.6, 0.15]], np.float32,
)  # fmt: skip
ARM_STATE = np.array([0.0, 0.6, 0.2, 1.0, 0.05, 0.7, 0.02], np.float32)


def make_robot_bank(n: int, hw: tuple[int, int], seed: int) -> ResetBank:
    """``make_bank`` plus each scene's initial robot state and arm keypoints (``vap``)."""
    bank = make_bank(n, hw, seed)
    shift = np.random.default_rng(seed + 1).uniform(-0.05, 0.05, (n, 1, 3)).astype(np.float32)
    state = np.repeat(ARM_STATE[None], n, 0)
    state[:, :3] += shift[:, 0]
    return ResetBank(
        bank.initial, bank.goal, bank.task, bank.episode, state=state,
        keypoints=ARM_KEYPOINTS[None] + shift,
    )  # fmt: skip


@pytest.fixture(scope="session")
def arm_pose() -> tuple[np.ndarray, np.ndarray]:
    """``(ARM_KEYPOINTS, ARM_STATE)``, (7, 3) and (7,) (test modules cannot import conftest)."""
    return ARM_KEYPOINTS, ARM_STATE


def make_prompt_world(
    generator: torch.Generator | None = None, trainable_only: bool = False, **dit_overrides
) -> WorldModel:
    """A 32x32 pixel-space world model (3 frames unless ``dit_overrides`` say otherwise; pass
    its ``prompt=``), every weight shifted by 0.05 * N(0, 1) draws of ``generator`` (seed 1 by
    default; ``trainable_only`` skips the frozen position embeddings) so the prompts and both
    prompt paths matter. Global seed 0 before the module init."""
    torch.manual_seed(0)
    cfg = dit_config(
        "tiny", input_size=(MW_HW, MW_HW), in_channels=3, patch_size=8,
        **(dict(num_frames=3, action_dim=MW_ACTION_DIM) | dit_overrides),
    )  # fmt: skip
    dit = VideoDiT(cfg)
    g = torch.Generator().manual_seed(1) if generator is None else generator
    with torch.no_grad():
        for p in dit.parameters():
            if p.requires_grad or not trainable_only:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    stats = {"mu_act": {"mean_step_l2": {"raw": {"1": MU_ACT, "2": MU_ACT}}}}
    diffusion = DiffusionConfig(prediction_type="sample", target="delta")
    return WorldModel(dit, PixelCodec(), diffusion, stats).eval()


@pytest.fixture(scope="session")
def tiny_prompt_world():
    """:func:`make_prompt_world` (test modules cannot import conftest)."""
    return make_prompt_world


@dataclass(frozen=True)
class TinyArtifacts:
    """Paths of the tiny artifacts; the constants are repeated here because test modules
    cannot import this conftest (tests/ has no packages)."""

    hw: ClassVar[int] = MW_HW
    action_dim: ClassVar[int] = MW_ACTION_DIM
    mu_act: ClassVar[float] = MU_ACT
    tasks: ClassVar[tuple[str, ...]] = tuple(TASKS)
    irasim_hw: ClassVar[tuple[int, int]] = IRASIM_HW
    fast: ClassVar[dict] = FAST

    world_dir: Path  # WorldModel dir + reset_bank.npz + reward_head/
    vap_dir: Path  # the same with a prompt-channels DiT, a robot-state bank and proprio/
    reward_head: Path
    rt1_ckpt: Path  # IRASim layout, 7-D actions
    languagetable_ckpt: Path  # IRASim layout, 2-D actions
    vae: Path
    irasim_bank: Path

    def irasim_kwargs(self, env_id: str) -> dict:
        """gym.make kwargs for an IRASim id."""
        ckpt = self.languagetable_ckpt if "LanguageTable" in env_id else self.rt1_ckpt
        return dict(
            model=str(ckpt),
            vae=str(self.vae),
            reset_bank=str(self.irasim_bank),
            action_chunk=3,
            sampling=dict(FAST),
        )

    def kwargs(self, env_id: str) -> dict:
        """gym.make kwargs that make any registered id run on the tiny artifacts."""
        if "VAP" in env_id:  # the preset's bank and head are the bundled default's: replace
            vap = self.vap_dir
            return dict(
                model=str(vap),
                reset_bank=str(vap / "reset_bank.npz"),
                reward_head=str(vap / "reward_head"),
                sampling=dict(FAST),
            )
        if "MetaWorldV2" in env_id:
            return dict(model=str(self.world_dir), sampling=dict(FAST))
        if "MetaWorld" in env_id:  # the grounded presets: the VAP twin with goal positions
            vap = self.vap_dir
            return dict(
                model=str(vap), reset_bank=str(vap / "grounded_bank.npz"), sampling=dict(FAST)
            )
        return self.irasim_kwargs(env_id)


def _save_irasim(dit: VideoDiT, path: Path, dataset: str) -> Path:
    sd = {k: v.detach().clone() for k, v in dit.state_dict().items()}
    args = {
        "model": "IRASim-tiny",
        "dataset": dataset,
        "extras": 3,
        "num_frames": 4,
        "video_size": list(IRASIM_HW),
        "mask_frame_num": 1,
    }
    torch.save({"ema": sd, "args": args}, path)
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyArtifacts:
    root = tmp_path_factory.mktemp("tiny_artifacts")
    torch.manual_seed(0)  # module init below uses the global generator

    # (1) pixel-space world model, its reset bank and a reward head
    cfg = dit_config(
        "tiny",
        input_size=(MW_HW, MW_HW),
        in_channels=3,
        patch_size=8,
        num_frames=3,
        action_dim=MW_ACTION_DIM,
    )
    dit = VideoDiT(cfg)
    perturb(dit, seed=1)
    stats = {
        "mu_act": {"mean_step_l2": {"raw": {"1": MU_ACT}}},
        "action_mean": [0.0] * MW_ACTION_DIM,
        "action_std": [1.0] * MW_ACTION_DIM,
    }
    world = WorldModel(
        dit, PixelCodec(), DiffusionConfig(prediction_type="sample", target="delta"), stats
    )
    world_dir = world.save_pretrained(root / "world")
    make_bank(6, (MW_HW, MW_HW), seed=2).save(world_dir / "reset_bank.npz")
    head = RewardHead(
        RewardHeadConfig(tasks=TASKS, channels=(8, 8), pool_size=2, task_dim=4, hidden=16)
    )
    head_dir = head.save_pretrained(world_dir / "reward_head")

    # (1b) its visual-action-prompt twin (conditioning: vap): prompt channels, robot bank, proprio
    vap = VideoDiT(replace(cfg, prompt="channels"))
    perturb(vap, seed=6)
    vap_dir = WorldModel(vap, PixelCodec(), world.diffusion, stats).save_pretrained(root / "vap")
    make_robot_bank(6, (MW_HW, MW_HW), seed=2).save(vap_dir / "reset_bank.npz")
    head.save_pretrained(vap_dir / "reward_head")
    ProprioModel(ProprioConfig(hidden=16, depth=1)).save_pretrained(vap_dir / "proprio")
    grounded = make_robot_bank(6, (MW_HW, MW_HW), seed=2)  # + goals: the grounded presets
    goal_pos = grounded.state[:, :3] + np.float32([0.05, 0.1, -0.05])
    replace(grounded, goal_pos=goal_pos).save(vap_dir / "grounded_bank.npz")

    # (2) IRASim-layout checkpoints, a tiny SDXL-like VAE (8x down) and a 64x80 bank
    rt1 = irasim_dit("tiny", "rt1", input_size=(8, 10), num_frames=4)
    perturb(rt1, seed=3)
    lt = irasim_dit("tiny", "languagetable", input_size=(8, 10), num_frames=4)
    perturb(lt, seed=4)
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
    make_bank(4, IRASIM_HW, seed=5).save(root / "irasim_bank.npz")
    return TinyArtifacts(
        world_dir=world_dir,
        vap_dir=vap_dir,
        reward_head=head_dir,
        rt1_ckpt=_save_irasim(rt1, root / "rt1_0000004.pt", "rt1"),
        languagetable_ckpt=_save_irasim(lt, root / "lt_0000004.pt", "languagetable"),
        vae=root / "vae",
        irasim_bank=root / "irasim_bank.npz",
    )


@pytest.fixture
def no_irasim_env_vars(monkeypatch):
    """Remove FREEACTION_<DATASET>_{CHECKPOINT,VAE,BANK} from the environment."""
    for tag in ("RT1", "BRIDGE", "LANGUAGETABLE"):
        for kind in ("CHECKPOINT", "VAE", "BANK"):
            monkeypatch.delenv(f"FREEACTION_{tag}_{kind}", raising=False)


def write_rt1_episode(root: Path, split: str, eid: int, frames: np.ndarray, state) -> None:
    """One RT-1-layout episode: lossless mp4 of uint8 frames (n, H, W, 3) + annotation JSON
    with the 7-D ``state`` rows (xyz, rpy, extra) and a constant gripper."""
    import json

    import imageio.v2 as iio

    video = root / "videos" / split / str(eid) / "rgb.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    iio.mimwrite(
        video, frames, fps=4, codec="libx264", pixelformat="yuv444p",
        output_params=["-qp", "0"], macro_block_size=8,
    )  # fmt: skip
    ann = {
        "episode_id": str(eid),
        "state": [list(map(float, row)) for row in state],
        "continuous_gripper_state": [0.5] * len(frames),
        "videos": [{"video_path": str(video.relative_to(root))}],
    }
    path = root / "annotation" / split / f"{eid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ann))


@pytest.fixture(scope="session")
def rt1_episode_writer():
    """:func:`write_rt1_episode` (test modules cannot import conftest)."""
    return write_rt1_episode


@pytest.fixture(scope="session")
def irasim_rt1_dataset(tmp_path_factory) -> Path:
    """A made-up RT-1-layout dataset (annotation JSON + lossless mp4, 64x80 frames) with two
    20-frame episodes per split: a bright block that moves with the end effector's x."""
    root = tmp_path_factory.mktemp("rt1_layout")
    h, w = IRASIM_HW
    for split in ("train", "val", "test"):
        for eid in range(2):
            n = 20
            rng = np.random.default_rng(100 + eid)
            xs = np.cumsum(rng.uniform(-0.02, 0.02, n))
            frames = np.full((n, h, w, 3), 60, np.uint8)
            for k, x in enumerate(xs):
                c = int(np.clip(32 + 600 * x, 0, w - 16)) // 16 * 16
                frames[k, 16:32, c : c + 16] = (230, 200, 40)
            write_rt1_episode(root, split, eid, frames, [[x, 0.5, 0.2, 0, 0, 0, 1] for x in xs])
    return root


@pytest.fixture
def load_experiment(monkeypatch):
    """``load_experiment(name)``: ``experiments/<name>.py`` as a module (registered in
    ``sys.modules`` for the test, since dataclasses look their module up; ``experiments/``
    on the path, since scripts import their neighbours)."""
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo / "experiments"))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, repo / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load

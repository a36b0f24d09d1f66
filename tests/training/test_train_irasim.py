"""The DiT trainer runs unchanged on an IRASim-layout dataset (annotation JSON + mp4)."""

from __future__ import annotations

import json

import numpy as np

from freeaction_gym.training.config import config_from_dict
from freeaction_gym.training.train_dit import train_dit
from freeaction_gym.world_model import WorldModel


def test_trainer_on_irasim_layout(tmp_path, rt1_episode_writer):
    root = tmp_path / "rt1"
    for split, ids in (("train", (0, 1, 2)), ("val", (3,))):
        for eid in ids:
            rng = np.random.default_rng(eid)
            frames = rng.integers(0, 255, (20, 4, 5, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
            state = [[0.01 * k, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0] for k in range(20)]
            rt1_episode_writer(root, split, eid, frames, state)
    cfg = config_from_dict(
        {
            "data": {
                "root": str(root),
                "format": "irasim",
                "irasim_dataset": "rt1",
                "clip_frames": 4,
            },
            "model": {"size": "tiny", "patch_size": 8},
            "diffusion": {"prediction_type": "sample", "target": "delta", "delta_scale": 0.0},
            "optim": {"steps": 3, "batch_size": 2, "warmup": 1, "threads": 1},
            "loop": {
                "output": str(tmp_path / "run"),
                "checkpoint_every": 3,
                "eval_every": 3,
                "eval_clips": 1,
                "eval_sample_steps": 2,
                "log_every": 1,
            },
        }
    )
    out = train_dit(cfg)
    world = WorldModel.from_pretrained(out)
    assert world.dit.config.action_dim == 7
    assert world.dit.config.input_size == (32, 40)
    # statistics come from the IRASim actions: x moves 0.01/frame -> 0.2 after x20
    np.testing.assert_allclose(world.stats["action_mean"][0], 0.2, atol=1e-6)
    assert world.stats["mu_act"]["mean_step_l2"]["raw"]["1"] > 0
    evals = [json.loads(line) for line in open(tmp_path / "run" / "eval.jsonl")]
    assert evals[-1]["step"] == 3 and np.isfinite(evals[-1]["psnr"])

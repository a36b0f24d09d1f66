"""The world-model fine-tune's training config: the saved network, a fixed budget, the
loop dataset and the weights it starts from."""

from __future__ import annotations

import json

import yaml

from freeaction_gym.dyna.config import WorldModelConfig
from freeaction_gym.dyna.finetune import finetune_config


def test_finetune_config_rebuilds_the_saved_network(tiny, tmp_path):
    saved = json.loads((tiny.world_dir / "config.json").read_text())
    train_yaml = tmp_path / "train.yaml"  # what trained the model: its model section differs
    train_yaml.write_text(yaml.safe_dump({
        "kind": "dit", "model": {"size": "S", "depth": 12},
        "optim": {"lr": 5e-4, "steps": 9999, "warmup": 7},
        "loop": {"eval_every": 500, "checkpoint_every": 200, "max_minutes": 60},
    }))  # fmt: skip
    wm = WorldModelConfig(
        init=str(tiny.world_dir), train_config=str(train_yaml), steps=12, ema_decay=0.9,
        overrides={"optim": {"batch_size": 3}},
    )  # fmt: skip
    cfg = finetune_config(wm, tiny.world_dir, tmp_path / "data", tmp_path / "out", seed=4)
    assert cfg.model == saved["config"]
    assert cfg.diffusion.delta_scale == saved["diffusion"]["delta_scale"]
    assert cfg.codec == "pixel"
    assert cfg.data.root == str(tmp_path / "data") and cfg.data.clip_frames == 3
    assert cfg.data.min_clip_frames == 2  # one context frame + one to predict
    assert (cfg.optim.steps, cfg.optim.seed, cfg.optim.ema_decay) == (12, 4, 0.9)
    assert (cfg.optim.lr, cfg.optim.warmup, cfg.optim.batch_size) == (5e-4, 7, 3)
    assert cfg.loop.init_from == str(tiny.world_dir) and cfg.loop.output == str(tmp_path / "out")
    assert cfg.loop.max_minutes is None and cfg.loop.eval_every == 0
    assert cfg.loop.checkpoint_every == 12


def test_collected_share_oversamples_exactly_the_collected_episodes(tiny, tmp_path):
    import re

    from freeaction_gym.dyna.dataset import COLLECTED_PATTERN, collected_index

    uniform = finetune_config(WorldModelConfig(init=str(tiny.world_dir)), tiny.world_dir,
                              tmp_path / "data", tmp_path / "out", seed=0)  # fmt: skip
    assert uniform.data.oversample_pattern is None and uniform.data.oversample_share == 0.0
    wm = WorldModelConfig(init=str(tiny.world_dir), collected_share=0.5)
    cfg = finetune_config(wm, tiny.world_dir, tmp_path / "data", tmp_path / "out", seed=0)
    assert cfg.data.oversample_pattern == COLLECTED_PATTERN and cfg.data.oversample_share == 0.5
    rx = re.compile(COLLECTED_PATTERN)
    collected = [
        f"reach-v3_{collected_index(it, k)}" for it in (0, 8, 9, 40) for k in (0, 7, 99_999)
    ]
    base = [f"reach-v3_{i:05d}" for i in (0, 1, 499, 99_999)] + ["push-v3_00012"]
    assert all(rx.fullmatch(n) for n in collected)  # incl. 7-digit indices (iteration >= 9)
    assert not any(rx.fullmatch(n) for n in base)

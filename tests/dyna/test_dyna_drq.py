"""The quick loop with the DrQ agent (``agent.algo=drq``) on tiny artefacts: the off-policy
agent trains in imagination from the loop's train scenes, continues its networks from one
iteration to the next, and refills its replay buffer fresh each iteration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld")

from freeaction_gym.cli import main as cli  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMESTEPS = 32
TINY_DRQ = (
    "agent.hp={drq: {buffer_size: 1000, learning_starts: 8, batch_size: 8, policy_kwargs: "
    "{features_extractor_kwargs: {features_dim: 8, channels: [8, 8], strides: [2, 2]}, "
    "net_arch: [16]}}}"
)


def test_quick_dyna_loop_with_drq(tiny, base_root, tmp_path, capsys, load_experiment):
    from stable_baselines3 import SAC

    from freeaction_gym.agents.drq import DrQPolicy

    out = tmp_path / "run"
    argv = [
        "dyna", "--config", str(REPO / "configs/dyna/quick.yaml"), "agent.algo=drq",
        f"output={out}", f"data.base={base_root}", f"world_model.init={tiny.world_dir}",
        "progress=false", "collect.episodes=2", "collect.steps=6", "collect.batch_size=2",
        "world_model.steps=2", "reward.steps=5", "reward.eval_every=5", "reward.batch_size=16",
        f"agent.timesteps={TIMESTEPS}", "agent.num_envs=2", TINY_DRQ,
        "agent.continued_learning_starts=2", "reward.imagined_episodes=3",
        "eval.episodes=2", "eval.steps=6", "eval.batch_size=2",
    ]  # fmt: skip
    assert cli(argv) == 0
    state = json.loads((out / "state.json").read_text())["iterations"]
    agents = [s["agent"] for s in state]

    # iteration 1 collected with iteration 0's DrQ agent and continued training it
    assert state[1]["collect"]["policy"] == "drq iter_000 + noise 0.2"
    models = [SAC.load(a["policy"], device="cpu") for a in agents]
    assert all(isinstance(m.policy, DrQPolicy) for m in models)
    assert models[0].observation_space.shape == (9, tiny.hw, tiny.hw)  # 3 stacked frames
    assert 0 < models[0]._n_updates < models[1]._n_updates  # the update count carried over
    # the random warm-up of SB3 (learning_starts) runs in full only for the untrained agent;
    # the continued one learns from its 2nd step on, so it made more updates in as many steps
    assert models[0].learning_starts == 8 and models[1].learning_starts == 2
    assert models[1]._n_updates - models[0]._n_updates > models[0]._n_updates

    # a fresh buffer each iteration: iteration 1 holds its own transitions only, although
    # the buffer (1000) could have kept iteration 0's as well
    for a in agents:
        assert a["replay_buffer"] == "fresh" and a["replay_transitions"] == TIMESTEPS
        assert a["timesteps"] == TIMESTEPS

    # the reward head of each iteration also read an imagined copy: the newest collected
    # episodes first (iteration 1: its own 2, then one of iteration 0's), made with that
    # iteration's fine-tuned world model
    for it, s in enumerate(state):
        imagined = s["reward"]["imagined"]
        assert imagined["episodes"] == {"train": 3, "val": 1, "test": 2}
        copies = sorted(Path(imagined["out"], "train").glob("*.npz"))
        sources = sorted(str(np.load(p)["source"]) for p in copies)
        newest = [f"reach-v3_{(it + 1) * 100000 + k}.npz" for k in range(2)]
        assert set(newest) <= set(sources)
        meta = json.loads(Path(imagined["out"], "meta.json").read_text())
        assert meta["imagined"]["model"] == s["world_model"]["model"]

    # the imagined env started from the loop's train scenes
    for s in state:
        assert s["agent"]["layouts"]["split"] == "train"
        assert s["agent"]["layouts"]["source"] == "reset_bank option"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["real_env_steps"] for r in rows] == [12, 24]
    assert all(0.0 <= r["real_success"] <= 1.0 and r["episodes"] == 2 for r in rows)

    # experiments/dyna_frames.py shows iteration 1's agent on the loop's evaluation scenes:
    # the same real episodes as the loop's evaluation (same scenes, seed and policy)
    frames = load_experiment("dyna_frames")
    shown = frames.main(frames.Args(run=str(out), iteration=1, scenes=2, every=3,
                                    heads=[f"tiny={tiny.reward_head}"],
                                    out=str(tmp_path / "frames")))  # fmt: skip
    # the iteration's own head, rescoring the imagined frames, credits what the env did
    own = shown["heads"]["iteration"]["imagined"]
    assert own["success"] == np.mean(shown["imagined_success"])
    assert own["return"] == pytest.approx(np.mean(shown["imagined_return"]), abs=0.2)
    assert own["agrees_with_real_success"] == np.mean(
        np.array(shown["imagined_success"]) == np.array(shown["real_success"])
    )
    assert set(shown["heads"]["tiny"]) == {"real", "imagined"}
    # the loop's evaluation logged what its head credits the real frames with: the same
    # numbers as the head scored on the same real episodes here
    on_real = shown["heads"]["iteration"]["real"]
    assert rows[1]["head_on_real_success"] == on_real["success"]
    assert rows[1]["head_on_real_agreement"] == on_real["agrees_with_real_success"]
    assert rows[1]["head_on_real_return"] == pytest.approx(on_real["return"], abs=0.2)
    assert all(0.0 <= r["head_on_real_success"] <= 1.0 for r in rows)
    assert shown["iteration"] == 1 and len(shown["real_return"]) == 2
    assert np.mean(shown["real_return"]) == pytest.approx(
        state[1]["evaluate"]["real_return"], abs=0.1
    )
    assert np.mean(shown["real_success"]) == state[1]["evaluate"]["real_success"]
    import imageio.v2 as imageio

    video = imageio.mimread(shown["video"])
    assert len(video) == 7 and video[0].shape == (2 * tiny.hw, 2 * tiny.hw, 3)  # 6 steps + start
    assert Path(shown["strip"]).stat().st_size > 0


REWARD_MODES = {
    "state": ["reward.mode=state"],
    # the learned head, refit on real and imagined episodes (the imagined copy replays
    # frames only, without the agent's proprio_obs; the agent's env is given the proprio
    # model, as the fine-tuned world model directory has none)
    "refit": ["reward.mode=refit", "reward.steps=5", "reward.eval_every=5",
              "reward.batch_size=16", "reward.imagined_episodes=2"],
}  # fmt: skip


@pytest.mark.parametrize("reward_mode", sorted(REWARD_MODES))
def test_quick_dyna_loop_with_proprio_observations(tiny, base_root, tmp_path, reward_mode):
    """``agent.env_kwargs.proprio_obs``: the DrQ agent sees hand xyz + gripper in imagination
    (the integrated proprio model) and, collecting and evaluated, in the real simulator (an
    SB3Policy trained on them refuses a world without them, so the run finishing shows both
    real worlds gave them). With ``agent.real_replay`` each iteration's buffer also starts
    with every real transition collected so far. Both reward signals: the state reward
    (reach) and the refit head (any task, e.g. push)."""
    from stable_baselines3 import SAC

    out = tmp_path / "run"
    proprio = "bundled:metaworld_vap/proprio"
    argv = [
        "dyna", "--config", str(REPO / "configs/dyna/quick.yaml"), "agent.algo=drq",
        f"output={out}", f"data.base={base_root}", f"world_model.init={tiny.world_dir}",
        "progress=false", "iterations=2", "collect.episodes=2", "collect.steps=6",
        "collect.batch_size=2", "world_model.steps=1", *REWARD_MODES[reward_mode],
        f"reward.proprio={proprio}", f"agent.timesteps={TIMESTEPS}", "agent.num_envs=2",
        TINY_DRQ, "agent.env_kwargs.proprio_obs=true", "agent.real_replay=true",
        "eval.episodes=2", "eval.steps=6", "eval.batch_size=2",
    ]  # fmt: skip
    assert cli(argv) == 0
    state = json.loads((out / "state.json").read_text())["iterations"]
    assert state[1]["collect"]["policy"] == "drq iter_000 + noise 0.2"  # read real proprio
    signal = "state" if reward_mode == "state" else "learned"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # only a learned head is scored on the real frames
    assert all(("head_on_real_success" in r) == (signal == "learned") for r in rows)
    for s in state:
        assert s["agent"]["env_kwargs"]["proprio_obs"] is True
        assert s["agent"]["env_kwargs"]["proprio_model"] == proprio
        assert s["agent"]["env_kwargs"]["reward"] == signal
        model = SAC.load(s["agent"]["policy"], device="cpu")
        space = model.observation_space
        assert space["image"].shape == (9, tiny.hw, tiny.hw) and space["proprio"].shape == (12,)
        assert model.policy.critic.features_extractor.proprio is not None
    # real replay: iteration k's buffer held the 2 x 6 real transitions of each iteration
    # <= k (the base dataset's episodes are not the agent's) besides its own imagined steps
    for k, s in enumerate(state):
        assert s["agent"]["real_transitions"] == 12 * (k + 1)
        assert s["agent"]["replay_transitions"] == TIMESTEPS + 12 * (k + 1)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["real_env_steps"] for r in rows] == [12, 24]
    for r in rows:
        assert 0.0 <= r["real_success"] <= 1.0 and np.isfinite(r["imagined_return"])

"""The play page's episode (freeaction_gym.web.session) and stepping thread
(freeaction_gym.web.server.StepWorker) on the tiny world model, without a server or a
browser: sampler changes reach the next step's info, rejected messages leave the episode
as it was, the recording's mp4 has one frame per env frame, its JSON replays through
``freeaction play --keys FILE.json`` to the same frames, and a slow step drops (not
queues) the actions sent meanwhile."""

from __future__ import annotations

import json
import threading
import time

import imageio.v3 as iio
import numpy as np
import pytest

from freeaction_gym.diffusion.guidance import guidance_weight
from freeaction_gym.play import main as play_main
from freeaction_gym.web.protocol import Action, Reset, Sampling, parse_message
from freeaction_gym.web.server import StepWorker
from freeaction_gym.web.session import PlaySession, frame_scores

ENV_ID = "FreeActionMetaWorld-v0"


@pytest.fixture
def session(tiny):
    s = PlaySession(
        ENV_ID, seed=3, real=False, model=str(tiny.world_dir), sampling=dict(tiny.fast),
        reward="goal_latent", max_episode_steps=6,
    )  # fmt: skip
    yield s
    s.close()


def test_reset_step_and_info(session, tiny):
    first = session.reset(bank_index=2)
    assert first["step"] == 0 and first["scene"]["bank_index"] == 2
    assert first["imagined"].startswith("data:image/png;base64,") and first["real"] is None
    out = session.press("w", msg_id=5)
    assert out["type"] == "frame" and out["id"] == 5 and out["step"] == 1
    assert out["info"]["action_norm"] == pytest.approx(np.sqrt(2.0))  # (1, 0, 0, -1)
    assert session.press("g")["type"] == "state" and session.gripper == 1.0
    assert session.actions[-1] == [1.0, 0.0, 0.0, -1.0] and session.keys == ["w", "g"]
    json.dumps(out)  # JSON-ready


def test_sampler_change_takes_effect_at_the_next_step(session):
    session.reset(bank_index=0)
    assert session.press("w")["info"]["guidance_weight"] == 0.0  # tiny.fast: no guidance
    values = parse_message('{"type": "sampling", "cfg": true, "lam": 2.0, "cutoff": 1.0}')
    state = session.set_sampling(values.values)
    assert state["sampling"]["cfg"] and state["sampling"]["lam"] == 2.0
    out = session.press("w")
    # eq. 2 re-computed: w = lam * ||a|| while guided (cutoff 1: every step)
    want = guidance_weight(np.sqrt(2.0), 0, 2, lam=2.0, cutoff=1.0)
    assert out["info"]["guidance_weight"] == pytest.approx(float(want))
    assert out["sampling"]["cfg"] and out["sampling"]["lam"] == 2.0 and out["step"] == 2


def test_rejected_sampler_and_reset_leave_the_episode_intact(session):
    session.reset(bank_index=1)
    session.press("a")
    before = (session.core.sampling, len(session.frames), session.scene)
    with pytest.raises(ValueError, match="tau_min <= tau_max"):
        session.set_sampling({"tau_min": 3.0})  # above the active tau_max 1.5
    with pytest.raises(ValueError, match="out of range"):
        session.reset(bank_index=99)
    with pytest.raises(ValueError):
        session.reset(task="no-such-task")
    assert (session.core.sampling, len(session.frames), session.scene) == before
    assert session.press("a")["step"] == 2


def test_episode_end_needs_a_reset(session):
    session.reset(bank_index=0)
    for _ in range(6):
        out = session.press(" ")
    assert out["truncated"] and session.done
    with pytest.raises(RuntimeError, match="reset"):
        session.press("w")
    assert session.reset()["step"] == 0 and not session.done


def test_recording_mp4_frames_and_json_replay(session, tiny, tmp_path):
    session.reset(bank_index=4, seed=11)
    for key in "wwgad r":
        session.press(key)
    video = iio.imread(session.video_bytes(scale=2), extension=".mp4")  # (T, H, W, 3)
    assert video.shape[0] == len(session.frames) == 7  # reset frame + 6 steps ('g' no step)
    assert video.shape[1:3] == (2 * 32, 2 * 32)
    episode = json.loads(session.episode_json_bytes())
    assert episode["keys"] == "wwgad r" and len(episode["actions"]) == 6
    path = tmp_path / "episode.json"
    path.write_text(json.dumps(episode))
    out = tmp_path / "replay"
    assert play_main(["--keys", str(path), "--out", str(out), "--model", str(tiny.world_dir),
                 "--option", "reward=goal_latent", "--option", "sampling={scheduler: ddim, "
                 "num_steps: 2}", "--option", "max_episode_steps=10"]) == 0  # fmt: skip
    replayed = iio.imread(out / "play.mp4", extension=".mp4")
    assert replayed.shape[0] == 7
    # the same scene, seed and actions: the same frames (the replay video is 4x, lossy)
    small = replayed[:, ::4, ::4].astype(int)
    assert np.abs(small[-1] - np.stack(session.frames)[-1].astype(int)).mean() < 12


def test_frame_scores_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    psnr, ssim = frame_scores(a, b)
    assert psnr == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255))
    assert ssim == pytest.approx(structural_similarity(b, a, channel_axis=-1, data_range=255))
    assert frame_scores(a, a) == (99.0, 1.0)  # identical: capped, not inf


class SlowSession:
    """A stand-in whose steps take ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay, self.paused, self.pressed = delay, False, []

    def press(self, key, msg_id):
        time.sleep(self.delay)
        self.pressed.append(msg_id)
        return {"type": "frame", "id": msg_id}

    def reset(self, task, bank_index, seed):
        if bank_index == 99:
            raise ValueError("bank_index 99 out of range")
        return {"type": "frame", "id": None, "step": 0}


def test_worker_drops_actions_sent_during_a_slow_step():
    replies, done = [], threading.Event()

    def emit(m):
        replies.append(m)
        if m.get("id") == 9 and m["type"] == "frame":
            done.set()

    session = SlowSession(0.3)
    worker = StepWorker(session, emit)
    worker.start()
    try:
        worker.submit(Action("w", 0))
        time.sleep(0.1)  # action 0 is running now
        for i in range(1, 10):
            worker.submit(Action("w", i))  # each replaces the one still waiting
        assert len(worker.queue) == 1
        assert done.wait(5)
    finally:
        worker.stop()
    assert session.pressed == [0, 9]
    assert sorted(m["id"] for m in replies if m["type"] == "dropped") == list(range(1, 9))


def test_worker_reports_errors_and_keeps_going():
    replies = []
    worker = StepWorker(SlowSession(0.0), replies.append)
    worker.start()
    try:
        worker.submit(Reset(bank_index=99))
        worker.submit(Sampling({"lam": 1.0}))  # SlowSession has no set_sampling: a bug
        worker.submit(Action("w", 1))
        worker.call(lambda: None).result(5)
    finally:
        worker.stop()
    assert replies[0] == {"type": "error", "message": "bank_index 99 out of range",
                          "request": "reset"}  # fmt: skip
    assert replies[1]["type"] == "error" and "AttributeError" in replies[1]["message"]
    assert replies[2] == {"type": "frame", "id": 1}


@pytest.mark.parametrize("env_id", ["FreeActionRT1-v0", "FreeActionLanguageTable-v0"])
def test_non_metaworld_ids_play_without_a_real_pane(tiny, env_id):
    kwargs = tiny.irasim_kwargs(env_id) | {"sampling": {"scheduler": "ddim", "num_steps": 1}}
    session = PlaySession(env_id, seed=0, **kwargs)  # real="auto": no MetaWorld id
    try:
        assert session.real is None and not session.hello()["real"]
        first = session.reset()
        out = session.press("w")
        assert out["step"] == 1 and out["real"] is None and out["psnr"] is None
        assert len(session.actions[-1]) == session.action_shape[0]  # a (K, A) chunk
        assert np.asarray(session.actions[-1])[:, 0].tolist() == [1.0] * session.action_shape[0]
        assert first["imagined"] != out["imagined"]
        video = iio.imread(session.video_bytes(scale=1), extension=".mp4")
        assert video.shape[0] == 2 and video.shape[1:3] == tiny.irasim_hw
    finally:
        session.close()

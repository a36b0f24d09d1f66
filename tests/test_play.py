"""``freeaction play`` in the terminal on the tiny world model: the key map, the key help
at the start, a line at each episode reset (key ``n`` and the time limit), the video."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np

from freeaction_gym.play import KEY_HELP, key_to_action, main


def test_key_map():
    a, g = key_to_action("w", -1.0)
    assert a.tolist() == [1.0, 0.0, 0.0, -1.0] and g == -1.0
    assert key_to_action("g", -1.0) == (None, 1.0)
    assert key_to_action(" ", 1.0)[0].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert key_to_action("x", 1.0) == (None, 1.0)
    assert key_to_action("a", -1.0, dim=7)[0].tolist() == [0, 1, 0, 0, 0, 0, -1]
    # 2-D (Language-Table): xy only, no gripper; z keys do not move
    assert key_to_action("d", -1.0, dim=2)[0].tolist() == [0.0, -1.0]
    assert key_to_action("r", -1.0, dim=2) == (None, -1.0)


def test_terminal_play_prints_help_and_resets(tiny, tmp_path, capsys):
    out = tmp_path / "play"
    argv = ["--keys", "wwnasd", "--out", str(out), "--model", str(tiny.world_dir),
            "--option", "reward=goal_latent", "--option", "max_episode_steps=2",
            "--option", "sampling={scheduler: ddim, num_steps: 1}"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith(KEY_HELP)
    assert "episode 2" in text and "(reset after time limit)" in text
    assert "(new episode, key 'n')" in text
    assert text.count(" reward ") == 5 and (out / "latest.png").is_file()
    video = iio.imread(out / "play.mp4", extension=".mp4")
    assert video.shape[0] == 1 + 5 + 3  # start, 5 steps, 3 resets (2 time limits, 'n')
    assert np.isfinite(video).all()

"""``freeaction play``: drive the imagined robot with the keyboard (IRASim-style teleop).

Keys (MetaWorld action space): ``w/s`` +x/-x, ``a/d`` +y/-y, ``r/f`` +z/-z, ``g`` toggle the
gripper, ``space`` no motion, ``n`` new episode, ``q`` quit. In a terminal each key press
steps the env and the newest frame is written to ``{out}/latest.png`` (open it in an image
viewer that reloads); without a terminal (or with ``--keys``) the key string is replayed.
Either way the whole rollout is saved as ``{out}/play.mp4``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from freeaction_gym.utils.args import make_output_dir

MOVES = {
    "w": (0, 1.0),
    "s": (0, -1.0),
    "a": (1, 1.0),
    "d": (1, -1.0),
    "r": (2, 1.0),
    "f": (2, -1.0),
}


def key_to_action(key: str, gripper: float, dim: int = 4) -> tuple[np.ndarray | None, float]:
    """(action or None for non-motion keys, new gripper value)."""
    a = np.zeros(dim, np.float32)
    if key == "g":
        return None, -gripper
    if key in MOVES:
        i, v = MOVES[key]
        a[i] = v
    elif key != " ":
        return None, gripper
    a[-1] = gripper
    return a, gripper


def _keys_from_terminal():
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while True:
            yield sys.stdin.read(1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def play(env_id: str, out: Path, keys: str | None, seed: int, **env_kwargs) -> Path:
    import gymnasium as gym
    import imageio.v2 as imageio

    import freeaction_gym  # noqa: F401

    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    make_output_dir(out)  # once the env (and its model) is made: a bad --model leaves none
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    gripper = -1.0
    source = iter(keys) if keys is not None or not sys.stdin.isatty() else _keys_from_terminal()
    if keys is None and not sys.stdin.isatty():
        source = iter(sys.stdin.read())
    for key in source:
        if key == "q":
            break
        if key == "n":
            env.reset()
            frames.append(env.render())
            continue
        action, gripper = key_to_action(key, gripper, env.action_space.shape[-1])
        if action is None:
            continue
        obs, reward, term, trunc, info = env.step(action)
        frames.append(env.render())
        imageio.imwrite(out / "latest.png", np.kron(frames[-1], np.ones((4, 4, 1), np.uint8)))
        print(f"key {key!r} reward {reward:+.3f} success {info['success']}", flush=True)
        if term or trunc:
            env.reset()
            frames.append(env.render())
    video = out / "play.mp4"
    big = [np.kron(f, np.ones((4, 4, 1), np.uint8)) for f in frames]
    imageio.mimwrite(video, big, fps=env.metadata.get("render_fps", 10), macro_block_size=1)
    return video


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="freeaction play",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="FreeActionMetaWorld-v0")
    p.add_argument("--out", default="outputs/play")
    p.add_argument("--keys", default=None, help="replay this key string instead of reading keys")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="world model dir (default: the preset's)")
    a = p.parse_args(argv)
    kwargs = {"model": a.model} if a.model else {}
    video = play(a.env, Path(a.out), a.keys, a.seed, **kwargs)
    print(f"rollout video written to {video}")
    return 0

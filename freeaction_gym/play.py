"""``freeaction play``: drive the imagined robot with the keyboard (IRASim-style teleop).

Keys (MetaWorld action space): ``w/s`` +x/-x, ``a/d`` +y/-y, ``r/f`` +z/-z, ``g`` toggle the
gripper, ``space`` no motion, ``n`` new episode, ``q`` quit. In a terminal each key press
steps the env and the newest frame is written to ``{out}/latest.png`` (open it in an image
viewer that reloads); without a terminal (or with ``--keys``) the key string is replayed.
Either way the whole rollout is saved as ``{out}/play.mp4``. ``--keys FILE.json`` replays an
episode downloaded from the browser page (its keys, scene and seed).

``--web`` (or :func:`serve`) plays in a browser instead: a local page shows the imagined
frame live beside the real MetaWorld simulator stepped with the same actions, with
sampler controls and episode recording (:mod:`freeaction_gym.web`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.keymap import KEY_HELP, MOVES, key_to_action  # noqa: F401
from freeaction_gym.utils.args import make_output_dir


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


def load_episode_keys(path: str | Path) -> dict[str, Any]:
    """A browser episode's JSON (``env``, ``seed``, ``bank_index``, ``keys``, ...)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("keys"), str):
        raise ValueError(f"{path}: an episode JSON needs a 'keys' string (freeaction play --web)")
    return data


def play(
    env_id: str,
    out: Path,
    keys: str | None,
    seed: int,
    bank_index: int | None = None,
    **env_kwargs,
) -> Path:
    import gymnasium as gym
    import imageio.v2 as imageio

    import freeaction_gym  # noqa: F401

    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    make_output_dir(out)  # once the env (and its model) is made: a bad --model leaves none
    options = {"bank_index": bank_index} if bank_index is not None else None
    obs, info = env.reset(seed=seed, options=options)
    frames = [env.render()]
    gripper = -1.0
    interactive = keys is None and sys.stdin.isatty()
    print(f"{KEY_HELP}; the newest frame is {out / 'latest.png'}", flush=True)
    print(f"episode 1: {info.get('task', '')}", flush=True)
    if interactive:
        source = _keys_from_terminal()
    else:
        source = iter(sys.stdin.read() if keys is None else keys)
    episode = 1
    for key in source:
        if key == "q":
            break
        if key == "n":
            gripper, episode = -1.0, episode + 1
            _, info = env.reset()
            frames.append(env.render())
            print(f"episode {episode}: {info.get('task', '')} (new episode, key 'n')", flush=True)
            continue
        action, gripper = key_to_action(key, gripper, env.action_space.shape[-1])
        if action is None:
            continue
        action = np.broadcast_to(action, env.action_space.shape)  # (K, A) with action chunks
        obs, reward, term, trunc, info = env.step(action)
        frames.append(env.render())
        imageio.imwrite(out / "latest.png", np.kron(frames[-1], np.ones((4, 4, 1), np.uint8)))
        print(f"key {key!r} reward {reward:+.3f} success {info['success']}", flush=True)
        if term or trunc:
            why = "success" if term else "time limit"
            gripper, episode = -1.0, episode + 1
            _, info = env.reset()
            frames.append(env.render())
            print(f"episode {episode}: {info.get('task', '')} (reset after {why})", flush=True)
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
    p.add_argument(
        "--keys",
        default=None,
        help="replay this key string (or an episode .json saved by the --web page: its "
        "keys from its scene and seed) instead of reading keys",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="world model dir (default: the preset's)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env option (YAML value), e.g. reset_bank=bank.npz; repeatable",
    )
    p.add_argument("--web", action="store_true", help="play in a browser (local server)")
    p.add_argument("--host", default="127.0.0.1", help="--web: address to bind")
    p.add_argument("--port", type=int, default=8765, help="--web: port (0: a free one)")
    a = p.parse_args(argv)
    kwargs = env_options(a.option)
    if a.model:
        kwargs["model"] = a.model
    if a.web:
        serve(a.env, host=a.host, port=a.port, seed=a.seed, **kwargs)
        return 0
    keys, seed, bank_index = a.keys, a.seed, None
    if keys is not None and keys.endswith(".json") and Path(keys).is_file():
        episode = load_episode_keys(keys)
        keys, seed, bank_index = episode["keys"], episode.get("seed", seed), episode["bank_index"]
        if episode.get("env") and episode["env"] != a.env:
            print(f"replaying an episode of {episode['env']} (its JSON names it)")
            a.env = episode["env"]
    video = play(a.env, Path(a.out), keys, seed, bank_index, **kwargs)
    print(f"rollout video written to {video}")
    return 0


def env_options(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> env keyword arguments (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def serve(
    env_id: str = "FreeActionMetaWorld-v0",
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 0,
    real: bool | str = "auto",
    open_browser: bool = False,
    **env_kwargs: Any,
) -> None:
    """Play ``env_id`` in a browser: serve the page on ``http://host:port/`` until
    interrupted (see :mod:`freeaction_gym.web.server`; needs the ``web`` extra)."""
    from freeaction_gym.web.server import serve as serve_web

    serve_web(env_id, host, port, seed, real, open_browser, **env_kwargs)

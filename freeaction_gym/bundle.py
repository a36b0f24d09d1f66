"""Package a trained run as a bundled model directory (``freeaction bundle``).

Writes ``model.safetensors`` (float16 weights, upcast on load), ``config.json`` (the model's
config, diffusion settings and dataset statistics), ``reset_bank.npz`` (initial and goal
frames, and the robot state where the dataset stores it, of held-out episodes) and
``demo_episodes.npz`` (:func:`save_demo_episodes`); a latent-codec model's ``vae/`` (as
:meth:`WorldModel.save_pretrained` stores it) is rewritten in the same float16 (the VAE
loader upcasts to float32). It copies ``reward_head/`` and ``proprio/`` (the proprioceptive
model env option ``conditioning: vap`` looks for) when given. The VAE and both directories
are loaded first, so a wrong one fails before anything is written.

``freeaction bundle`` needs ``--out``: a new or empty folder (``--force`` for a non-empty
one), never one inside the installed package (:func:`check_target`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.models.autoencoder import VideoAutoencoder
from freeaction_gym.models.checkpoint import load_safetensors, read_config_json
from freeaction_gym.prompts.proprio import ProprioModel
from freeaction_gym.rewards.learned import RewardHead
from freeaction_gym.utils.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
"""The installed ``freeaction_gym`` package, which ``freeaction bundle`` never writes into."""


def export_bundle(
    model_dir: str | Path,
    data_root: str | Path,
    out: str | Path,
    reward_head: str | Path | None = None,
    split: str = "test",
    dtype: torch.dtype = torch.float16,
    proprio: str | Path | None = None,
) -> Path:
    """Write the bundle of ``model_dir`` (a world-model directory) and ``data_root``'s
    ``split`` to ``out``; see the module docstring. Returns ``out``."""
    model_dir, out = Path(model_dir), Path(out)
    if reward_head is not None:  # errors name the directory, before anything is written
        RewardHead.from_pretrained(reward_head)
    if proprio is not None:
        ProprioModel.from_pretrained(proprio)
    sd = load_safetensors(model_dir / "model.safetensors")  # errors name the file; NaN refused
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    meta = read_config_json(model_dir / "config.json")
    meta["weights_dtype"] = str(dtype).removeprefix("torch.")
    vae = None  # WorldModel.from_pretrained reads <dir>/vae for codec "autoencoder"
    if meta.get("codec", "pixel") == "autoencoder":
        vae = VideoAutoencoder.from_pretrained(model_dir / "vae").vae.to(dtype)
    bank = ResetBank.from_dataset(data_root, split)
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    bank.save(out / "reset_bank.npz")
    save_demo_episodes(data_root, split, out / "demo_episodes.npz")
    if vae is not None:
        write_dir(out / "vae", lambda tmp: vae.save_pretrained(str(tmp), safe_serialization=True))
    for name, src in (("reward_head", reward_head), ("proprio", proprio)):
        if src is not None:
            replace_dir(src, out / name)
    return out


def replace_dir(src: str | Path, dst: Path) -> None:
    """Copy directory ``src`` to ``dst``, replacing an old ``dst`` only once the copy is
    complete (nothing to do when ``src`` is ``dst``: re-bundling in place)."""
    src = Path(src)
    if dst.exists() and dst.resolve() == src.resolve():
        return
    write_dir(dst, lambda tmp: shutil.copytree(src, tmp))


def write_dir(dst: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` a directory next to ``dst``, then put it in place of an old ``dst``
    (which stays intact if ``write`` fails)."""
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():  # left by an interrupted run
        shutil.rmtree(tmp)
    write(tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def save_demo_episodes(
    data_root: str | Path, split: str, path: Path, per_task: int = 2, steps: int = 40
) -> None:
    """A few held-out episodes (frames + actions) so the demo can compare imagination with
    the real simulator's frames without the dataset: ``rgb`` uint8 (E, steps+1, H, W, 3),
    ``action`` float32 (E, steps, A), ``success`` bool (E, steps), ``task`` str (E,)."""
    import numpy as np

    from freeaction_gym.data.episodes import list_episodes, load_episode

    rgb, act, suc, task = [], [], [], []
    for t in sorted({p.stem.rsplit("_", 1)[0] for p in list_episodes(data_root, split)}):
        for p in list_episodes(data_root, split, [t])[:per_task]:
            ep = load_episode(p)
            rgb.append(ep.rgb[: steps + 1])
            act.append(np.asarray(ep.action[:steps], np.float32))
            suc.append(np.asarray(ep.success[:steps], bool))
            task.append(t)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp, rgb=np.stack(rgb), action=np.stack(act), success=np.stack(suc), task=np.array(task)
    )
    tmp.replace(path)


def check_target(out: str | Path, force: bool = False) -> Path:
    """``out`` as a bundle destination: never inside the installed ``freeaction_gym``
    package (its bundled models are release artifacts, replaced by hand), and not a
    non-empty folder unless ``force`` (re-bundling over an old bundle). Raises
    :class:`UserError` naming ``out``."""
    out = Path(out)
    if out.resolve().is_relative_to(PACKAGE_DIR):
        raise UserError(
            f"--out {out}: refusing to write into the installed freeaction_gym package "
            f"({PACKAGE_DIR}); bundle to a folder of your own and pass it as model=<dir>"
        )
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: folder is not empty; pass --force to overwrite it")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="freeaction bundle", description=__doc__)
    p.add_argument("--model", default="runs/metaworld_default/model", help="trained model dir")
    p.add_argument("--data", default="data/metaworld_default", help="dataset root (reset bank)")
    p.add_argument("--split", default="test", help="split whose episodes form the reset bank")
    p.add_argument("--reward-head", default=None, help="reward head dir to include")
    p.add_argument(
        "--proprio",
        default=None,
        metavar="DIR",
        help="proprio model dir to include (for env option conditioning: vap)",
    )
    p.add_argument("--out", required=True, help="bundle folder to write (new or empty)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")
    a = p.parse_args(argv)
    check_target(a.out, a.force)
    out = export_bundle(a.model, a.data, a.out, a.reward_head, a.split, proprio=a.proprio)
    print(f"bundle written to {out}")
    return 0

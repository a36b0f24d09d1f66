"""Where the world model's training data went: bounds for the env option ``support``.

An imagined episode's *displacement* is the running sum of its env actions since reset
(for MetaWorld's xyz mocap deltas: where the hand was sent, in action units). A policy that
drives it far outside what the training episodes did sees the world model extrapolate -
blurred or dissolving arms that a learned reward head may still score well (docs/RESULTS.md,
issue 6). :func:`displacement_support` measures per-dimension quantiles of the displacement
over the first ``horizon`` actions of every train episode; the env halts an episode when it
leaves that box (:class:`~freeaction_gym.envs.config.EnvConfig` ``support``).

    python -m freeaction_gym.envs.support data/metaworld_default --horizon 40 --quantile 0.005
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from freeaction_gym.data.episodes import list_episodes, load_episode

UNBOUNDED = 1e9  # bound of the dimensions left free (e.g. the gripper effort)


def displacement_support(
    root: str,
    horizon: int = 40,
    quantile: float = 0.005,
    dims: list[int] | None = None,
    split: str = "train",
) -> dict[str, list[float]]:
    """``{"low": [A], "high": [A]}``: the ``quantile`` and ``1 - quantile`` points of the
    running action sum over steps 1..horizon of every ``split`` episode, for ``dims``
    (default: all); other dimensions get +-``UNBOUNDED``."""
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"quantile must be in [0, 0.5), got {quantile}")
    sums = []
    for path in list_episodes(root, split):
        a = load_episode(path, load_depth=False, action_dim=None).action[:horizon]
        sums.append(np.cumsum(a.astype(np.float64), axis=0))  # (T, A)
    d = np.concatenate(sums)
    a_dim = d.shape[1]
    dims = list(range(a_dim)) if dims is None else list(dims)
    low, high = np.full(a_dim, -UNBOUNDED), np.full(a_dim, UNBOUNDED)
    low[dims] = np.quantile(d[:, dims], quantile, axis=0)
    high[dims] = np.quantile(d[:, dims], 1.0 - quantile, axis=0)
    return {"low": low.round(3).tolist(), "high": high.round(3).tolist()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="dataset root")
    p.add_argument("--horizon", type=int, default=40)
    p.add_argument("--quantile", type=float, default=0.005)
    p.add_argument("--dims", type=int, nargs="+", default=None, help="default: all")
    a = p.parse_args(argv)
    print(json.dumps(displacement_support(a.data, a.horizon, a.quantile, a.dims)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

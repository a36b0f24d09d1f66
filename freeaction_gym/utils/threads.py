"""CPU thread settings.

On small 2-core machines PyTorch's default OpenMP spin-waiting made small models 4-15x
slower than with ``OMP_WAIT_POLICY=PASSIVE`` (REFERENCE §7). Entry points call
:func:`configure_threads` before torch does any work.
"""

from __future__ import annotations

import os


def configure_threads(num_threads: int | None = None) -> int:
    """Set a passive OpenMP wait policy and the torch intra-op thread count.

    ``OMP_WAIT_POLICY`` is only read when the OpenMP runtime starts, so this sets it in the
    environment (for child processes too) and then fixes torch's thread count. Returns
    the thread count in use. ``FREEACTION_THREADS`` overrides ``num_threads``.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env = os.environ.get("FREEACTION_THREADS")
    if env:
        num_threads = int(env)
    import torch

    if num_threads is not None and num_threads > 0:
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()

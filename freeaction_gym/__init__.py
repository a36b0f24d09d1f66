"""freeaction-gym: a learned robot video simulator as a Gymnasium environment.

Importing the package is cheap: torch and model weights load only when an environment or
model is created.
"""

import os as _os

# Must be set before the OpenMP runtime starts (see freeaction_gym.utils.threads).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from freeaction_gym.envs.registration import ENV_IDS, REAL_ENV_IDS, register_envs  # noqa: E402

register_envs()

__all__ = ["ENV_IDS", "REAL_ENV_IDS", "__version__"]

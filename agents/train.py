"""``python -m agents.train``: train a stable-baselines3 agent on a FreeAction env
(:mod:`freeaction_gym.agents.train` holds the code)."""

from freeaction_gym.agents.train import main

if __name__ == "__main__":
    raise SystemExit(main())

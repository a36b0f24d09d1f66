"""Play the world model in a browser (``freeaction play --web``).

:mod:`~freeaction_gym.web.protocol` (page messages, no server), :mod:`~freeaction_gym.web.session`
(the episode: imagined and real env, scores, recording) and :mod:`~freeaction_gym.web.server`
(Starlette + uvicorn, one stepping thread); the page is ``static/`` (package data).
"""

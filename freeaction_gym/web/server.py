"""The browser play server: Starlette + uvicorn, one websocket, one stepping thread.

``GET /`` serves the page (``static/``, package data; no CDN), ``GET /episode.mp4`` and
``GET /episode.json`` the recording, ``/ws`` the messages of
:mod:`~freeaction_gym.web.protocol`. Every call into the :class:`PlaySession` (steps,
resets, sampler changes, downloads) runs in ONE worker thread (:class:`StepWorker`), in the
order the page sent them, so the event loop never waits on the model and the session
needs no lock. A slow model does not make the page lag further and further behind: a new
``action`` replaces one still waiting (the page is told it was ``dropped``), so at most
one step is pending; other messages wait in a short queue (:data:`MAX_PENDING`) and are
refused beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from freeaction_gym.web.protocol import Action, Pause, ProtocolError, Reset, Sampling, parse_message
from freeaction_gym.web.session import PlaySession

STATIC = Path(__file__).resolve().parent / "static"
MAX_PENDING = 16
"""Messages (besides the one pending action) the worker may have waiting."""
SEND_QUEUE = 64
"""Outgoing messages kept per page; beyond it the oldest is dropped."""


class StepWorker:
    """Runs the session's calls in one thread. ``emit(message)`` (called from that thread
    and from :meth:`submit`) delivers a reply to the pages."""

    def __init__(self, session: PlaySession, emit: Callable[[dict], None]) -> None:
        self.session, self.emit = session, emit
        self.queue: deque = deque()
        self.cond = threading.Condition()
        self.dropped = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="freeaction-step", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join(timeout=10)

    def submit(self, message) -> bool:
        """Queue a parsed message; False (not queued) when :data:`MAX_PENDING` are waiting.
        A motion ``action`` replaces a motion action still waiting at the queue's end."""
        with self.cond:
            last = self.queue[-1] if self.queue else None
            if _replaceable(message) and _replaceable(last):
                self.queue.pop()
                self.dropped += 1
                self.emit({"type": "dropped", "id": last.id, "reason": "replaced by a newer key"})
            elif len(self.queue) >= MAX_PENDING:
                return False
            self.queue.append(message)
            self.cond.notify()
        return True

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` in the worker after what is queued; its result as a future."""
        future: Future = Future()
        with self.cond:
            self.queue.append((fn, future))
            self.cond.notify()
        return future

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                item = self.queue.popleft()
            if isinstance(item, tuple):
                fn, future = item
                try:
                    future.set_result(fn())
                except Exception as err:  # noqa: BLE001  (handed to the caller)
                    future.set_exception(err)
                continue
            try:
                reply = self._handle(item)
            except (ValueError, RuntimeError) as err:
                reply = {"type": "error", "message": str(err), "request": _kind(item)}
            except Exception as err:  # noqa: BLE001  (a bug must not kill the worker)
                reply = {"type": "error", "message": f"{type(err).__name__}: {err}",
                         "request": _kind(item)}  # fmt: skip
            if reply is not None:
                if isinstance(item, Action) and reply.get("type") == "state":
                    reply["id"] = item.id  # a gripper toggle answers its key press
                self.emit(reply)

    def _handle(self, msg) -> dict | None:
        s = self.session
        if isinstance(msg, Action):
            if s.paused and not msg.force:
                return {"type": "dropped", "id": msg.id, "reason": "paused (use step)"}
            return s.press(msg.key, msg.id)
        if isinstance(msg, Reset):
            return s.reset(msg.task, msg.bank_index, msg.seed)
        if isinstance(msg, Pause):
            return s.set_paused(msg.paused)
        if isinstance(msg, Sampling):
            return s.set_sampling(msg.values)
        raise TypeError(f"unhandled message {msg!r}")


def _replaceable(msg) -> bool:
    return isinstance(msg, Action) and not msg.force and msg.key != "g"


def _kind(msg) -> str:
    return type(msg).__name__.lower()


def build_app(session: PlaySession):
    """The Starlette app around ``session`` (its worker starts with the app)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    pages: set[asyncio.Queue] = set()
    loop_box: dict[str, asyncio.AbstractEventLoop] = {}

    def fanout(message: dict) -> None:  # on the event loop
        for q in pages:
            if q.full():
                q.get_nowait()
            q.put_nowait(message)

    def emit(message: dict) -> None:  # from any thread
        loop = loop_box.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fanout, message)

    worker = StepWorker(session, emit)

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def episode_mp4(request):
        data = await asyncio.wrap_future(worker.call(session.video_bytes))
        name = f"{session.env_id}-episode{session.episodes}.mp4"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="video/mp4", headers=headers)

    async def episode_json(request):
        data = await asyncio.wrap_future(worker.call(session.episode_json_bytes))
        name = f"{session.env_id}-episode{session.episodes}.json"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="application/json", headers=headers)

    async def stats(request):
        return JSONResponse({"dropped": worker.dropped, "pending": len(worker.queue)})

    async def ws_endpoint(ws: WebSocket) -> None:
        await ws.accept()
        queue: asyncio.Queue = asyncio.Queue(maxsize=SEND_QUEUE)
        hello = await asyncio.wrap_future(worker.call(session.hello))
        last = await asyncio.wrap_future(worker.call(lambda: session.last_frame))
        await ws.send_text(json.dumps(hello))
        if last is not None:
            await ws.send_text(json.dumps(last))
        pages.add(queue)

        async def sender() -> None:
            while True:
                await ws.send_text(json.dumps(await queue.get()))

        task = asyncio.create_task(sender())
        try:
            while True:
                text = await ws.receive_text()
                try:
                    message = parse_message(text)
                except ProtocolError as err:
                    await queue.put({"type": "error", "message": str(err), "request": text[:200]})
                    continue
                if not worker.submit(message):
                    await queue.put({"type": "error", "message": "busy: too many messages "
                                     "waiting; try again", "request": text[:200]})  # fmt: skip
        except WebSocketDisconnect:
            pass
        finally:
            pages.discard(queue)
            task.cancel()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop_box["loop"] = asyncio.get_running_loop()
        worker.start()
        if session.last_frame is None:
            worker.call(session.reset)
        yield
        worker.stop()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/episode.mp4", episode_mp4),
            Route("/episode.json", episode_json),
            Route("/stats", stats),
            WebSocketRoute("/ws", ws_endpoint),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.worker = worker
    return app


def serve(
    env_id: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 0,
    real: bool | str = "auto",
    open_browser: bool = False,
    **env_kwargs: Any,
) -> None:
    """Load ``env_id`` (and its real twin), bind ``host:port`` (0: a free port), print the
    URL and serve until Ctrl-C."""
    try:
        import uvicorn
    except ImportError as err:
        raise SystemExit(
            "freeaction play --web needs the web extra: pip install 'freeaction-gym[web]'"
        ) from err
    session = PlaySession(env_id, seed=seed, real=real, **env_kwargs)
    if session.real is None and "MetaWorld" in env_id:
        print(session.real_reason, flush=True)
    app = build_app(session)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    url = f"http://{host}:{sock.getsockname()[1]}/"
    print(f"freeaction play: {env_id} at {url} (Ctrl-C stops)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", ws="auto")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        session.close()

"""Key-press-to-frame latency of ``freeaction play --web`` (issue 40).

Starts the server (``PlayServer``: the real CLI in a subprocess) and presses a key ``presses``
times, one at a time: each press waits for the new imagined frame before the next. Two
clients, one after the other on the same server:

* ``websocket``: a websocket client sends ``{"type": "action", "key": ..., "id": n}`` and
  times until the ``frame`` with that id arrives (server queueing, the env step, the real
  MetaWorld step, PSNR/SSIM, PNG encoding, JSON, transport);
* ``browser`` (with Chromium): selenium holds a key down in headless Chromium; the page
  itself times from its ``keydown`` send to the frame message (``window.play.latencies``)
  and the frame is drawn on the canvas.

Beside each: the env step's own time (``env.unwrapped.timing['step_time_ms']``, echoed as
``env_step_ms``). Writes a markdown table (p50 / p95 ms):

    python experiments/bench_play_web.py --out outputs/bench_play_web.md
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from freeaction_gym.utils.args import parse_args
from freeaction_gym.web.launch import PlayServer, browser_missing, chromium, wait_for


@dataclass
class Args:
    """Time key press -> new imagined frame through the play server."""

    env: str = "FreeActionMetaWorld-v0"
    """Registered env id served."""
    presses: int = 50
    """Timed key presses per client (after 3 warmup presses)."""
    browser: bool = True
    """Also time through headless Chromium (skipped when it is absent)."""
    out: str | None = None
    """Write the markdown table here."""


KEYS = "wsadrf"  # a press of each in turn: the arm wanders but stays near the start


def websocket_latency(url: str, presses: int) -> tuple[list[float], list[float]]:
    """(press -> frame ms, env step ms) per press, through a websocket client."""
    from websockets.sync.client import connect

    latency, step = [], []
    with connect(url.replace("http://", "ws://") + "ws", max_size=None) as ws:
        for _ in range(2):  # hello and the current frame
            ws.recv()
        done = True
        for n in range(presses + 3):
            if done:  # a new episode at the start and at the time limit (untimed)
                ws.send(json.dumps({"type": "reset"}))
                while json.loads(ws.recv())["type"] != "frame":
                    pass
            t0 = time.perf_counter()
            ws.send(json.dumps({"type": "action", "key": KEYS[n % len(KEYS)], "id": n}))
            while True:
                m = json.loads(ws.recv())
                if m["type"] == "frame" and m["id"] == n:
                    break
            done = m["terminated"] or m["truncated"]
            if n >= 3:
                latency.append((time.perf_counter() - t0) * 1000)
                step.append(m["env_step_ms"])
    return latency, step


def browser_latency(url: str, presses: int) -> tuple[list[float], list[float]]:
    """(keydown -> frame ms as the page measures it, env step ms) per press in Chromium."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver = chromium()
    try:
        driver.get(url)
        wait_for(driver, "window.play.frames >= 1 && window.play.moves.w", timeout=60)
        driver.execute_script("window.play.latencies = []")
        steps = []
        for n in range(presses + 3):
            if n == 0 or driver.execute_script("return window.play.done"):
                driver.execute_script("document.getElementById('reset').click()")
                wait_for(driver, "window.play.lastFrame.step === 0 && !window.play.done")
            frames = driver.execute_script("return window.play.frames")
            key = KEYS[n % len(KEYS)]
            ActionChains(driver).key_down(key).key_up(key).perform()  # released before 100 ms
            wait_for(driver, f"window.play.frames > {frames}", every=0.005)
            steps.append(driver.execute_script("return window.play.lastFrame.env_step_ms"))
        latency = driver.execute_script("return window.play.latencies")
    finally:
        driver.quit()
    return latency[3:], steps[3:]


def row(name: str, latency: list[float], step: list[float]) -> str:
    p = lambda x, q: float(np.percentile(x, q))
    return (
        f"| {name} | {len(latency)} | {p(latency, 50):.0f} / {p(latency, 95):.0f} | "
        f"{p(step, 50):.0f} / {p(step, 95):.0f} |"
    )


def main(args: Args) -> str:
    lines = [
        "| client | presses | key press -> new frame p50 / p95 ms | env step p50 / p95 ms |",
        "|---|---|---|---|",
    ]
    # episodes end only at the time limit, so presses are never refused mid-run
    with PlayServer("--env", args.env, "--option", "terminate_on_success=false") as server:
        lines.append(row("websocket", *websocket_latency(server.url, args.presses)))
        why = browser_missing()
        if args.browser and why is None:
            lines.append(row("headless Chromium", *browser_latency(server.url, args.presses)))
        elif args.browser:
            print(f"browser skipped: {why}")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")
    return table


if __name__ == "__main__":
    main(parse_args(Args))

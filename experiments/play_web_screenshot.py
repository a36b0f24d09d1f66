"""The README's screenshot of ``freeaction play --web`` (docs/img/play_web.png).

Starts the server on the bundled MetaWorld model, opens the page in headless Chromium,
plays a few held keys so the panes, the info panel and the PSNR/SSIM plot have content,
and saves the page:

    python experiments/play_web_screenshot.py --out docs/img/play_web.png
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from freeaction_gym.utils.args import parse_args
from freeaction_gym.web.launch import PlayServer, browser_missing, chromium, wait_for


@dataclass
class Args:
    """Screenshot the browser play page."""

    env: str = "FreeActionMetaWorld-v0"
    """Registered env id served."""
    bank_index: int = 45
    """Reset-bank entry (scene) shown."""
    keys: str = "sssaaff"
    """Keys held in turn (each ~0.35 s: a few steps at the page's 100 ms repeat)."""
    out: str = "docs/img/play_web.png"
    """Where the PNG goes."""


def main(args: Args) -> Path:
    from selenium.webdriver.common.action_chains import ActionChains

    why = browser_missing()
    if why:
        raise SystemExit(f"no headless browser: {why}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with PlayServer("--env", args.env) as server:
        driver = chromium(width=960, height=1000)
        try:
            driver.get(server.url)
            wait_for(driver, "window.play.frames >= 1 && window.play.moves.w", timeout=60)
            reset = {"type": "reset", "bank_index": args.bank_index}
            driver.execute_script(f"window.play.ws.send('{json.dumps(reset)}')")
            wait_for(driver, f"window.play.lastFrame.scene.bank_index === {args.bank_index}")
            for key in args.keys:
                ActionChains(driver).key_down(key).pause(0.35).key_up(key).perform()
                time.sleep(0.2)
            time.sleep(1.0)  # the last frames arrive and draw
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    print(f"screenshot written to {out}")
    return out


if __name__ == "__main__":
    main(parse_args(Args))

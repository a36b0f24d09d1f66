"""Start ``freeaction play --web`` in a subprocess and open the page in headless Chromium:
shared by the browser test, the screenshot script and the latency benchmark.

The browser is Debian's ``chromium`` + ``chromium-driver`` (``scripts/setup.sh`` installs
them) driven by selenium; :func:`browser_missing` says why it cannot run here, if it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

CHROMIUM = os.environ.get("FREEACTION_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FREEACTION_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why headless Chromium cannot be driven here (None: it can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} not found (Debian: apt-get install chromium chromium-driver; {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'freeaction-gym[dev]')"
    return None


class PlayServer:
    """``freeaction play --web --port 0 ARGS`` as a context manager; :attr:`url` is the
    address it printed."""

    def __init__(self, *args: str, timeout: float = 180.0) -> None:
        self.args, self.timeout = args, timeout
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def __enter__(self) -> PlayServer:
        cmd = [sys.executable, "-m", "freeaction_gym.cli", "play", "--web", "--port", "0"]
        self.proc = subprocess.Popen(
            [*cmd, *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            found = re.search(r"(http://[\d.]+:\d+/)", line)
            if found:
                self.url = found.group(1)
                threading.Thread(target=self._drain, daemon=True).start()  # never block it
                return self
        self.__exit__(None, None, None)
        raise RuntimeError("play --web did not print its URL:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def chromium(download_dir: str | Path | None = None, width: int = 1000, height: int = 860):
    """A headless Chromium selenium driver (downloads land in ``download_dir``)."""
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):  # fmt: skip
        opts.add_argument(arg)
    if download_dir is not None:
        prefs = {"download.default_directory": str(download_dir),
                 "download.prompt_for_download": False}  # fmt: skip
        opts.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(CHROMEDRIVER))


def wait_for(driver, script: str, timeout: float = 60.0, every: float = 0.05):
    """Poll ``return <script>`` in the page until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script("return " + script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"page never satisfied: {script}")
        time.sleep(every)

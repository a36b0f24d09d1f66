"""``freeaction play --web`` in headless Chromium (selenium), on the bundled MetaWorld model
and the real simulator: held keys step both worlds, a sampler change shows in the next
step's info, a bad control value gets an error and leaves the episode alone, and the
downloaded mp4 has one frame per env frame. Skips where Chromium or selenium is absent."""

from __future__ import annotations

import time

import pytest

from freeaction_gym.web.launch import PlayServer, browser_missing, chromium, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CANVAS = "document.getElementById('{}').toDataURL()"
PANES = ("imagined", "real")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    why = browser_missing()
    if why:
        pytest.skip(f"no headless browser: {why}")
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    pytest.importorskip("metaworld", reason="the real pane needs the metaworld extra")
    downloads = tmp_path_factory.mktemp("downloads")
    with PlayServer("--env", "FreeActionMetaWorld-v0", "--seed", "0") as server:
        driver = chromium(downloads)
        try:
            driver.get(server.url)
            wait_for(driver, "window.play.frames >= 1 && window.play.moves.w", timeout=60)
            yield driver, downloads
        finally:
            driver.quit()


def hold(driver, key: str, seconds: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).key_down(key).pause(seconds).key_up(key).perform()


def test_keys_step_both_worlds(page):
    driver, _ = page
    imagined, real = (driver.execute_script("return " + CANVAS.format(c)) for c in PANES)
    start = driver.execute_script("return window.play.lastFrame.step")
    hold(driver, "d", 0.6)  # held: repeats every 100 ms
    wait_for(driver, f"window.play.lastFrame.step >= {start + 3}")
    time.sleep(0.3)  # the last images decode and draw
    assert driver.execute_script("return " + CANVAS.format("imagined")) != imagined
    assert driver.execute_script("return " + CANVAS.format("real")) != real  # the real pane follows
    last = driver.execute_script("return window.play.lastFrame")
    assert last["real"] and last["real_info"] is not None
    assert 0 < last["ssim"] <= 1 and last["psnr"] > 5
    assert driver.execute_script("return window.play.psnr.length") == last["step"] + 1


def test_sampler_change_reaches_the_next_step(page):
    from selenium.webdriver.common.by import By

    driver, _ = page
    steps = driver.find_element(By.ID, "num_steps")
    steps.clear()
    steps.send_keys("3")
    cfg = driver.find_element(By.ID, "cfg")
    if not cfg.is_selected():
        cfg.click()
    driver.find_element(By.ID, "apply").click()
    wait_for(driver, "window.play.sampling.num_steps === 3 && window.play.sampling.cfg")
    before = driver.execute_script("return window.play.lastFrame.step")
    driver.find_element(By.TAG_NAME, "body").click()  # keys go to the page, not the form
    hold(driver, "w", 0.05)
    wait_for(driver, f"window.play.lastFrame.step > {before}")
    last = driver.execute_script("return window.play.lastFrame")
    assert last["sampling"]["num_steps"] == 3 and last["sampling"]["cfg"] is True
    assert last["info"]["guidance_weight"] > 0  # action-scaled CFG: lam * ||a||


def test_bad_control_value_gets_an_error_and_the_episode_goes_on(page):
    from selenium.webdriver.common.by import By

    driver, _ = page
    step = driver.execute_script("return window.play.lastFrame.step")
    errors = driver.execute_script("return window.play.errors.length")
    lam = driver.find_element(By.ID, "lam")
    lam.clear()
    lam.send_keys("99")
    driver.find_element(By.ID, "apply").click()
    wait_for(driver, f"window.play.errors.length > {errors}")
    assert "lam=99" in driver.execute_script("return window.play.errors.at(-1)")
    assert driver.execute_script("return window.play.lastFrame.step") == step
    driver.find_element(By.TAG_NAME, "body").click()
    hold(driver, "a", 0.05)
    wait_for(driver, f"window.play.lastFrame.step > {step}")


def test_pause_holds_keys_and_step_once_steps(page):
    from selenium.webdriver.common.by import By

    driver, _ = page
    driver.find_element(By.ID, "pause").click()
    wait_for(driver, "window.play.paused")
    step = driver.execute_script("return window.play.lastFrame.step")
    driver.find_element(By.TAG_NAME, "body").click()
    hold(driver, "w", 0.3)
    time.sleep(0.5)
    assert driver.execute_script("return window.play.lastFrame.step") == step
    driver.find_element(By.ID, "step-once").click()
    wait_for(driver, f"window.play.lastFrame.step === {step + 1}")
    driver.find_element(By.ID, "pause").click()
    wait_for(driver, "!window.play.paused")


def test_download_mp4_has_every_frame(page):
    import imageio.v3 as iio
    from selenium.webdriver.common.by import By

    driver, downloads = page
    frames = driver.execute_script("return window.play.lastFrame.step") + 1
    driver.find_element(By.ID, "download-mp4").click()
    deadline = time.monotonic() + 60
    while not (done := [p for p in downloads.glob("*.mp4")]) and time.monotonic() < deadline:
        time.sleep(0.2)  # Chromium writes *.crdownload first
    assert done, "no mp4 downloaded"
    video = iio.imread(done[0], extension=".mp4")
    assert video.shape[0] == frames
    assert video.shape[2] == 2 * video.shape[1]  # imagined | real

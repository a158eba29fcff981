"""`voxlm chat` in a real browser: Debian's chromium, driven by selenium through chromium-driver, against the page
that `voxlm chat --cascade` serves with the shipped model (started once for the module).

Checked here: uploading a clip, a preset, the streamed answer checked against what the clip says, the timings, the
cascade column, the processor's error for an empty clip (and the conversation going on), two sessions at once, a
recording from the microphone (chromium's fake capture device, fed a WAV file), and that the page makes no request
beyond this machine. The recording's words are not checked: the browser's gain control boosts and clips it, and the
shipped model, trained on clean espeak-ng speech, does not repeat such a recording.
"""

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile

pytestmark = [pytest.mark.browser, pytest.mark.real]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Without these, chromium's own connections (updates, sync, QUIC probes) fail noisily on a closed network.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
VOICE = "en-us+m1"  # a held-out voice the shipped model hears well
SERVER_START_SECONDS = 600  # the first start builds the shipped folder; later ones reuse it
ANSWER_SECONDS = 300
STOPWORDS = {"the", "a", "an", "of", "to", "in", "on", "at", "for", "and", "is", "was", "i", "me", "my", "you", "it"}


def content_words(text: str) -> set[str]:
    from voxlm.train.offline.sentences import normalize_text

    return set(normalize_text(text).split()) - STOPWORDS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`voxlm chat --cascade` in its own process, as a user starts it; yields the URL it prints."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    if missing:
        message = f"{', '.join(missing)} missing: scripts/setup.sh installs Debian's chromium and chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the page must not depend on it
    command = [sys.executable, "-m", "voxlm.train.cli", "chat", "--cascade", "--port", str(free_port()),
               "--max-new-tokens", "24"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output, url, deadline = [], None, time.time() + SERVER_START_SECONDS
    while url is None and time.time() < deadline and process.poll() is None:
        try:
            output.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        url = next(iter(re.findall(r" at (http://127\.0\.0\.1:\d+/?) ", output[-1])), None)
    if url is None:
        process.kill()
        pytest.fail("voxlm chat did not start:\n" + "".join(output[-30:]))
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    """Opens fresh chromium sessions (each its own profile); checks afterwards that no request left this machine."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def open_page(url: str, *flags: str):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, *flags, f"--user-data-dir={tmp_path / f'profile-{len(drivers)}'}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        drivers.append(driver)
        driver.get(url)
        wait_for(driver, lambda: driver.find_elements("id", "chat-send"), 60, "the page to load")
        return driver

    yield open_page
    try:
        for driver in drivers:
            hosts = requested_hosts(driver)
            assert hosts <= {"127.0.0.1", "localhost"}, f"the page reached beyond this machine: {hosts}"
    finally:
        for driver in drivers:
            driver.quit()


def requested_hosts(driver) -> set[str]:
    """Hosts of every http(s)/ws(s) request the page made (chromium's performance log)."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = message["params"].get("request", {}).get("url") or message["params"].get("url", "")
            if url.startswith(("http:", "https:", "ws:", "wss:")):
                hosts.add(urlparse(url).hostname)
    return hosts


def wait_for(driver, condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


# ----------------------------------------------------------------------------------------- page actions
def upload(driver, path: Path) -> None:
    driver.find_element("css selector", "#chat-audio input[type=file]").send_keys(str(path))
    # The upload area gives way to a player once the file is on the server.
    wait_for(driver, lambda: not driver.find_elements("css selector", "#chat-audio input[type=file]"), 30, "upload")


def send(driver, preset: str | None = None, text: str | None = None) -> None:
    from voxlm.chat.engine import PRESETS

    box = driver.find_element("css selector", "#chat-instruction textarea")
    if preset:
        driver.find_element("xpath", f"//*[@id='chat-preset']//label[contains(., '{preset}')]").click()
        # The preset fills the instruction through the server: wait for it before typing or sending.
        wait_for(driver, lambda: box.get_attribute("value") == PRESETS.get(preset, ""), 30, f"the {preset} preset")
    if text is not None:
        box.clear()
        box.send_keys(text)
    driver.find_element("id", "chat-send").click()


def answers(driver, column: str) -> list[tuple[str, str]]:
    """Finished answers of a column: (answer text, timings line)."""
    finished = []
    for row in driver.find_elements("css selector", f"#{column} .bot-row"):
        stats = row.find_elements("css selector", ".voxlm-stats")
        if stats:
            finished.append((row.text.replace(stats[0].text, "").strip(), stats[0].text))
    return finished


def wait_answers(driver, column: str, count: int) -> list[tuple[str, str]]:
    return wait_for(driver, lambda: (found := answers(driver, column)) and len(found) >= count and found,
                    ANSWER_SECONDS, f"{count} answer(s) in {column}")  # fmt: skip


def user_bubbles(driver, column: str) -> list[str]:
    return [row.text for row in driver.find_elements("css selector", f"#{column} .user-row")]


def save_screenshot(driver, path: Path, for_readme: bool = False) -> None:
    """A small PNG (palette colours) of the page; with `for_readme`, also written to $VOXLM_CHAT_SCREENSHOT when set
    (`VOXLM_CHAT_SCREENSHOT=docs/chat.png pytest tests/test_chat_browser.py` renews the README's picture)."""
    from PIL import Image

    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
    if for_readme and os.environ.get("VOXLM_CHAT_SCREENSHOT"):
        shutil.copyfile(path, os.environ["VOXLM_CHAT_SCREENSHOT"])


def speech(folder: Path, name: str, text: str, sampling_rate: int = 22050) -> Path:
    """An espeak-ng clip of `text` as a WAV file at espeak-ng's own rate (the page resamples it)."""
    from voxlm.train.offline.speech import synthesize

    path = folder / f"{name}.wav"
    soundfile.write(path, synthesize(text, VOICE, sampling_rate=sampling_rate), sampling_rate)
    return path


@pytest.fixture(scope="module")
def sentences():
    from voxlm.train.offline.sentences import sentences as held_out_sentences

    return held_out_sentences(3, "held_out", seed=5)


def assert_repeated(answer: str, said: str) -> None:
    """Most content words of what was said come back (not an exact match: a better model will replace this one)."""
    expected = content_words(said)
    heard = content_words(answer) & expected
    assert len(heard) >= 0.6 * len(expected), f"said {said!r}, answered {answer!r}"


# ------------------------------------------------------------------------------------------------ tests
def test_repeat_a_clip_then_an_empty_clip_then_go_on(server, browser, sentences, tmp_path):
    page = browser(server)
    said = sentences[0]
    upload(page, speech(tmp_path, "said", said))
    send(page, preset="Repeat what was said")
    (answer, timings), *_ = wait_answers(page, "voxlm-chat", 1)
    wait_answers(page, "cascade-chat", 1)  # the turn ends with the cascade's answer; Send is ignored until then
    assert_repeated(answer, said)
    assert re.fullmatch(r"clip \d+\.\d s · \d+ audio positions · first token \d+\.\d+ s · \d+\.\d tokens/s", timings)
    assert "Repeat exactly what was said." in user_bubbles(page, "voxlm-chat")[0]

    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    upload(page, empty)
    send(page)
    status = wait_for(page, lambda: page.find_element("id", "chat-status").text, 60, "the error message")
    assert "The clip was not used" in status and "Audio clip 0 is empty" in status
    assert len(user_bubbles(page, "voxlm-chat")) == 1  # the bad turn was not added

    send(page, preset="None (type your own)", text="Say hello.")  # the conversation goes on, with a typed turn
    wait_answers(page, "voxlm-chat", 2)
    wait_answers(page, "cascade-chat", 2)
    assert page.find_element("id", "chat-status").text == ""
    assert user_bubbles(page, "voxlm-chat")[1] == "Say hello."
    save_screenshot(page, tmp_path / "chat.png")
    assert (tmp_path / "chat.png").stat().st_size < 400_000


def test_cascade_beside_the_model_in_two_sessions_at_once(server, browser, sentences, tmp_path):
    pages = [browser(server), browser(server)]
    said = sentences[1:3]
    for page, text, name in zip(pages, said, ("first", "second")):
        upload(page, speech(tmp_path, name, text, sampling_rate=44100 if name == "second" else 22050))
        send(page, preset="Repeat what was said")  # both sessions send before either is answered
    for page, text, other in zip(pages, said, reversed(said)):
        (answer, timings), *_ = wait_answers(page, "voxlm-chat", 1)
        (cascade_answer, cascade_timings), *_ = wait_answers(page, "cascade-chat", 1)
        assert_repeated(answer, text)
        assert not (content_words(other) - content_words(text)) & content_words(answer)  # its own clip only
        assert cascade_answer and re.search(r"Whisper \d+\.\d+ s · first token \d+\.\d+ s · \d+\.\d tokens/s",
                                            cascade_timings)  # fmt: skip
        assert "clip" in timings and "tokens/s" in timings
        heard = user_bubbles(page, "cascade-chat")[0]
        assert heard.startswith("Whisper heard:") and "Repeat exactly what was said." in heard
        assert len(user_bubbles(page, "voxlm-chat")) == 1  # the other session's turn is not here
    save_screenshot(pages[0], tmp_path / "chat-cascade.png", for_readme=True)


def test_microphone_recording_is_answered(server, browser, sentences, tmp_path):
    microphone = speech(tmp_path, "microphone", sentences[0], sampling_rate=48000)
    page = browser(server, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-audio-capture={microphone}%noloop")  # fmt: skip
    page.find_element("css selector", "#chat-audio button[aria-label='Record audio']").click()
    page.find_element("css selector", "#chat-audio button.record-button").click()
    time.sleep(4)
    page.find_element("css selector", "#chat-audio button.stop-button").click()
    # The browser turns the recording into a WAV file and uploads it, as a file upload would be.
    wait_for(page, lambda: page.find_elements("css selector", "#chat-audio [data-testid='download-link']"), 60,
             "the recording on the server")  # fmt: skip
    send(page, preset="Repeat what was said")
    (answer, timings), *_ = wait_answers(page, "voxlm-chat", 1)
    wait_answers(page, "cascade-chat", 1)
    seconds = float(re.match(r"clip (\d+\.\d) s", timings).group(1))
    assert 3.0 <= seconds <= 7.0 and answer

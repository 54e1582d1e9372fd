"""End to end in a real browser: `streamlit run ui/app.py` on the sample index, driven by Debian's chromium
through playwright (the Python package only; no `playwright install`). Saves test-artifacts/ui-answer.png."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import free_port, wait_until_up

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KG_QUESTION = "Sara Kestelman appears in which movies"
STARTUP_TIMEOUT_S = 120
ANSWER_TIMEOUT_S = 300


@pytest.fixture
def server(sample_index, tmp_path):
    pytest.importorskip("streamlit", reason="the UI needs the 'ui' extra: pip install .[ui]")
    port = free_port()
    log = tmp_path / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--", "--index", str(sample_index),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    with log.open("wb") as handle:
        process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/_stcore/health", process, log, timeout_s=STARTUP_TIMEOUT_S, what="streamlit")
        yield url, started, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_ask_a_kg_question_in_the_browser(server):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    url, started, log = server
    healthy_s = time.monotonic() - started
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(ANSWER_TIMEOUT_S * 1000)
            page.goto(url)
            chat = page.locator('[data-testid="stChatInput"] textarea')
            chat.wait_for(state="visible")  # shown once the index and models are loaded
            ready_s = time.monotonic() - started
            asked = time.monotonic()
            chat.fill(KG_QUESTION)
            chat.press("Enter")
            messages = page.locator('[data-testid="stChatMessage"]')
            answer = messages.filter(has_text="Zardoz").filter(has_text="Confidence").last
            answer.wait_for(state="visible")
            answer_s = time.monotonic() - asked
            first_answer_s = time.monotonic() - started

            citation = page.get_by_text("KG triple · Zardoz|starred_actors|Sara Kestelman").first
            citation.wait_for(state="visible")
            citation.click()
            page.get_by_text("Zardoz starred actors Sara Kestelman").first.wait_for(state="visible")
            page.locator('[data-testid="stGraphVizChart"] svg').first.wait_for(state="visible")
            page.wait_for_timeout(1000)  # let the chart finish drawing before the screenshot
            page.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)

            assert "via knowledge graph" in answer.inner_text()
            assert "Not enough evidence" not in answer.inner_text()
        except sync_api.Error as exc:
            pytest.fail(f"{exc}\n--- streamlit log ---\n{log.read_text(errors='replace')[-3000:]}")
        finally:
            browser.close()

    timings = {
        "server_healthy_s": round(healthy_s, 2),
        "chat_ready_s": round(ready_s, 2),
        "answer_after_submit_s": round(answer_s, 2),
        "first_answer_after_start_s": round(first_answer_s, 2),
    }
    (ARTIFACTS / "ui-timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"ui timings: {timings}")

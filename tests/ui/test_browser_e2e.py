"""The web UI in a real browser: Debian's chromium driven by Playwright, against `rag ui`.

Starts the app on 127.0.0.1, creates a knowledge base, uploads a file, asks a question
about it, sees a cited answer, opens the citation and saves a screenshot under the
test's output dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`rag ui` on a free port of 127.0.0.1, with an empty home."""
    port = _free_port()
    env = {**os.environ, "RAG_HOME": str(tmp_path / "home")}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ui", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail((tmp_path / "server.log").read_text())
            time.sleep(0.5)
    yield url
    # `rag ui` execs the server, so this stops it; the group covers any helper it starts.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_upload_ask_and_open_a_citation_in_chromium(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Model loading and CPU generation take far longer than Playwright's 5 s default.
    expect.set_options(timeout=120_000)

    upload = tmp_path / "security-handbook.md"
    shutil.copy(SAMPLES / "security-handbook.md", upload)
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{server}/knowledge-bases")
            page.get_by_label("Name").fill("e2e")
            page.get_by_role("button", name="Create").click()
            expect(page.get_by_text("Created e2e.")).to_be_visible()

            page.locator("input[type=file]").set_input_files(str(upload))
            expect(page.get_by_text("security-handbook.md").first).to_be_visible()
            page.get_by_role("button", name="Add to knowledge base").click()
            expect(page.get_by_text("1 new, 0 updated")).to_be_visible(timeout=300_000)
            page.screenshot(path=str(screenshots / "1-uploaded.png"), full_page=True)

            page.get_by_role("link", name="Chat").click()
            box = page.get_by_placeholder("Ask a question about e2e")
            box.fill("How often is the signing key rotated?")
            box.press("Enter")
            # Once answered, the page reruns to list the new conversation in the sidebar.
            expect(
                page.get_by_role("button", name="How often is the signing key rotated?")
            ).to_be_visible(timeout=600_000)
            chip = page.locator(
                '[data-testid="stPopoverButton"]:not([disabled])',
                has_text="[1] security-handbook.md",
            )
            expect(chip).to_have_count(1)
            assistant = page.locator('[data-testid="stChatMessage"]').nth(1)
            expect(assistant).to_contain_text("90 days")
            chip.click()
            expect(page.get_by_text("Ed25519").last).to_be_visible()
            page.screenshot(path=str(screenshots / "2-citation.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(screenshots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert (screenshots / "2-citation.png").stat().st_size > 10_000
    # Keep the screenshots where a person can look at them after the run.
    keep = os.environ.get("UI_SCREENSHOTS_DIR")
    if keep:
        shutil.copytree(screenshots, keep, dirs_exist_ok=True)

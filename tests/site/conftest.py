"""Fixtures of the browser tests: the built site, served on 127.0.0.1, Chromium, and chapter
1's playground page (test_bnlibjs.py, test_playground.py, test_live_a11y.py)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from tests.site.live import PLAYGROUND
from tests.site.pages import CHROMIUM, CHROMIUM_ARGS, SITE, QuietHandler, open_page, unavailable


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        unavailable(f"no built book at {SITE}: run `make book` first")
    return SITE


@pytest.fixture(scope="session")
def base_url(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def playground_page(browser, base_url):
    page, log = open_page(browser, base_url, PLAYGROUND)
    page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
    yield page
    page.context.close()
    assert log.errors == [], f"console errors on {PLAYGROUND}: {log.errors}"

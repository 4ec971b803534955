"""Shared by the browser tests: the built site, its pages, and opening one in Chromium.

The tests read the already built ``_build/html`` (``make test`` builds the book first; set
``BNBOOK_SITE`` to check another build), serve it on 127.0.0.1 and open pages in headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) with every request off
127.0.0.1 aborted. The fixtures (``site``, ``base_url``, ``browser``) are in conftest.py.
"""

from __future__ import annotations

import http.server
import os
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("BNBOOK_SITE", ROOT / "_build" / "html"))
SCREENSHOTS = SITE.parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip on a developer's machine; under CI a missing build or browser is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def toc_chapters() -> list[str]:
    """Every chapter file named in _toc.yml, e.g. 'chapters/01_worked_example'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]).removesuffix(".md").removesuffix(".ipynb"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return files


def numbered_chapters() -> list[str]:
    """The chapter files of _toc.yml's numbered parts (the appendix part is not numbered)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []
    for part in toc.get("parts", []):
        if part.get("numbered"):
            for chapter in part.get("chapters", []):
                files.append(str(chapter["file"]).removesuffix(".md").removesuffix(".ipynb"))
    return files


#: A chapter page stays under this height, in CSS pixels, at 1280 px wide (the developers'
#: guide); longer material goes to an appendix page.
MAX_CHAPTER_HEIGHT = 15_000


#: The Chinese edition, below the English one (``make book``: _build/html/zh).
ZH = "zh"
#: The Chinese pages the browser tests open (every test over PAGES runs on them too): the
#: landing page, chapter 1 (the playground, glued numbers) and chapter 6 (the training
#: explorer). Opening all of them would double the browser tests' time (README, "中文版").
ZH_SAMPLE = ("index.html", "chapters/01_worked_example.html", "chapters/06_training.html")


def site_pages(root: Path = SITE) -> list[str]:
    """Every HTML page of the English edition (or of the edition at ROOT), as paths relative
    to its root."""
    if not (root / "index.html").exists():
        return ["index.html"]  # the fixture below skips (or fails under CI)
    skip = ("_static", "_sources", "_images", ZH)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if p.relative_to(root).parts[0] not in skip
    )


def zh_pages() -> list[str]:
    """Every page of the Chinese edition, as paths relative to the site's root."""
    if not (SITE / ZH / "index.html").exists():
        return []
    return [f"{ZH}/{path}" for path in site_pages(SITE / ZH)]


ZH_PAGES = [f"{ZH}/{path}" for path in ZH_SAMPLE if (SITE / ZH / path).exists()]
PAGES = site_pages() + ZH_PAGES


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the tests report what matters
        pass


class PageLog:
    """What a page did: console errors, uncaught exceptions, failed or off-site requests,
    and the requests still in flight (to name them if the network never goes idle)."""

    def __init__(self):
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.offsite: list[str] = []
        self.in_flight: set[str] = set()


#: CSS transitions and animations off, so what a test measures is the final state at once
#: (a wait for a transition to end would depend on how busy the machine is).
NO_TRANSITIONS = (
    "*, *::before, *::after { transition: none !important; animation: none !important; }"
)


def without_transitions(page) -> None:
    """Turn off ``page``'s CSS transitions and animations (see :data:`NO_TRANSITIONS`)."""
    page.add_style_tag(content=NO_TRANSITIONS)


def open_page(browser, base_url: str, path: str):
    """A new page at ``path`` with everything off 127.0.0.1 blocked; returns (page, log)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    log = PageLog()

    def route(route):
        url = route.request.url
        if url.startswith(base_url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            log.offsite.append(url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and log.errors.append(m.text))
    page.on("pageerror", lambda e: log.errors.append(f"uncaught: {e}"))

    def request_failed(request):
        log.failed.append(f"{request.url} ({request.failure})")
        log.in_flight.discard(request.url)

    page.on("requestfailed", request_failed)
    page.on("response", lambda r: r.status >= 400 and log.failed.append(f"{r.url} ({r.status})"))
    page.on("request", lambda r: log.in_flight.add(r.url))
    page.on("requestfinished", lambda r: log.in_flight.discard(r.url))
    page.goto(base_url + path, wait_until="load")
    settle(page, log)
    return page, log


def settle(page, log: PageLog) -> None:
    """Wait for MathJax to typeset, widgets to render and every image to finish loading."""
    page.evaluate(
        """async () => {
            if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
            document.querySelectorAll('img[loading="lazy"]').forEach(i => i.loading = "eager");
        }"""
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll(
                   'script[type="application/vnd.jupyter.widget-view+json"]')]
                 .every(s => s.parentElement.querySelector('.jupyter-widgets'))""",
        timeout=20_000,
    )
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
    try:  # nothing left loading; on a machine busy with other tests this can take long
        page.wait_for_load_state("networkidle", timeout=45_000)
    except Exception as exc:  # Playwright's TimeoutError: what matters is checked anyway
        # (math typeset, widgets rendered, images complete above; failed and off-site
        # requests in the page's log): a slow connection left open is no failure of the page
        message = (
            f"{page.url}: network not idle after 45 s ({type(exc).__name__}); "
            f"in flight: {sorted(log.in_flight) or 'nothing this page requested'}"
        )
        warnings.warn(message, stacklevel=2)


def screenshot_name(path: str) -> str:
    return path.removesuffix(".html").replace("/", "__") + ".png"

"""The rendered book in a real browser: every page works offline, on its own.

Reads the already built ``_build/html`` (``make test`` builds the book first; set
``BNBOOK_SITE`` to check another build), serves it on 127.0.0.1 and opens every page in
headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) with every request
off 127.0.0.1 aborted. Per page: no console errors, no failed requests, all math typeset by
MathJax, all images loaded, all widgets rendered, no traceback in an output (except cells
tagged ``raises-exception``), every chapter in the navigation; every chapter page under the height
limit and every figure with an alt text that describes it. On pages with explorers the
static slider is moved and the frame shown must change. Full-page screenshots go to
``_build/screenshots/``.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from tests.site.pages import (
    MAX_CHAPTER_HEIGHT,
    PAGES,
    SCREENSHOTS,
    SITE,
    numbered_chapters,
    open_page,
    screenshot_name,
    toc_chapters,
)


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(browser, base_url, path):
    page, log = open_page(browser, base_url, path)
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / screenshot_name(path)), full_page=True)
        state = page.evaluate(
            """() => {
                const math = [...document.querySelectorAll('.math')];
                const cells = [...document.querySelectorAll('.cell')]
                    .filter(c => !c.classList.contains('tag_raises-exception'));
                return {
                    math: math.length,
                    untypeset: math.filter(m => !m.querySelector('mjx-container'))
                                   .map(m => m.textContent.slice(0, 60)),
                    texErrors: document.querySelectorAll('mjx-merror').length,
                    brokenImages: [...document.images]
                        .filter(i => !(i.complete && i.naturalWidth > 0))
                        .map(i => i.src.slice(0, 100)),
                    tracebacks: cells.filter(c => c.querySelector('.output.traceback')
                            || /Traceback \\(most recent call last\\)/.test(
                                   c.querySelector('.cell_output')?.innerText || ''))
                        .map(c => (c.querySelector('.cell_input')?.innerText || '')
                                      .slice(0, 80)),
                    nav: [...document.querySelectorAll('.bd-sidebar-primary nav a[href]')]
                        .map(a => a.href.split('#')[0]),
                    icon: !!document.querySelector('link[rel~="icon"]'),
                };
            }"""
        )
    finally:
        page.context.close()
    assert log.offsite == [], f"requests off the site: {log.offsite}"
    assert log.failed == [], f"failed requests: {log.failed}"
    assert log.errors == [], f"console errors: {log.errors}"
    assert state["untypeset"] == [], f"math not typeset by MathJax: {state['untypeset']}"
    assert state["texErrors"] == 0, "MathJax reported TeX errors"
    assert state["brokenImages"] == [], f"images not loaded: {state['brokenImages']}"
    assert state["tracebacks"] == [], f"tracebacks in outputs of cells: {state['tracebacks']}"
    # without an icon a browser asks the server's root for /favicon.ico: a 404, a console error
    assert state["icon"], "no <link rel=icon>"
    edition = base_url + ("zh/" if path.startswith("zh/") else "")
    missing = [c for c in toc_chapters() if f"{edition}{c}.html" not in state["nav"]]
    assert missing == [], f"chapters missing from the navigation: {missing}"


def explorer_pages() -> list[str]:
    pages = [p for p in PAGES if p.startswith(("chapters/", "zh/chapters/"))]
    return [p for p in pages if "bnbook-explorer" in (SITE / p).read_text(encoding="utf-8")]


@pytest.mark.parametrize("path", explorer_pages() or ["(no explorer found)"])
def test_static_explorer_slider_switches_frames(browser, base_url, path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    if path == "(no explorer found)":
        pytest.fail("no page of the built book contains a static explorer (bnbook-explorer)")
    page, log = open_page(browser, base_url, path)
    try:
        explorers = page.locator(".bnbook-explorer")
        assert explorers.count() >= 1
        for i in range(explorers.count()):
            explorer = explorers.nth(i)
            explorer.scroll_into_view_if_needed()
            shown = """e => [...e.querySelectorAll('img, .widget-html-content')]
                              .filter(x => x.offsetParent !== null)
                              .map(x => x.src || x.textContent).join('|')"""
            page.wait_for_function(  # the first frame: an image
                f"e => ({shown})(e).includes('blob:')", arg=explorer.element_handle()
            )
            before = explorer.evaluate(shown)
            handle = explorer.locator(".noUi-handle").first
            handle.focus()
            after = before
            for key in ("Home", "End"):  # to one end of the range, then the other
                handle.press(key)
                try:  # the switch is instant; allow a slow, loaded machine some time
                    page.wait_for_function(
                        f"([e, before]) => ({shown})(e) !== before",
                        arg=[explorer.element_handle(), before],
                        timeout=5_000,
                    )
                except PlaywrightTimeout:
                    continue
                after = explorer.evaluate(shown)
                break
            assert after != before, f"explorer {i} on {path}: the frame did not change"
    finally:
        page.context.close()
    assert log.errors == [], f"console errors while moving the slider: {log.errors}"


def test_pages_reference_nothing_off_site(site):
    """No script, stylesheet or image in the HTML points outside the site. (A canonical
    link names the published address; the browser loads nothing from it.)"""
    loads = re.compile(
        r'<(?:script|img)[^>]+src="(https?:)?//|<link(?![^>]*rel="canonical")[^>]+href="(https?:)?//'
    )
    offenders = [
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if loads.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_widget_ids_are_the_same_on_every_build(site):
    """Widget models are renamed after their page and order (not uuid4), so a rebuild of
    unchanged chapters gives the same pages."""
    state_script = re.compile(
        r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.DOTALL
    )
    pages_with_widgets = 0
    for page in site.rglob("*.html"):
        match = state_script.search(page.read_text(encoding="utf-8"))
        if not match:
            continue
        pages_with_widgets += 1
        name = page.relative_to(site).with_suffix("").as_posix()
        docname = name.removeprefix("zh/")  # the Chinese edition's pages are named alike
        expected = [
            hashlib.sha1(f"{docname}:{i}".encode()).hexdigest()[:32]
            for i in range(len(json.loads(match.group(1))["state"]))
        ]
        assert list(json.loads(match.group(1))["state"]) == expected, name
        notebook = page.parent.joinpath(
            *[".."] * docname.count("/"), "_sources", f"{docname}.ipynb"
        )
        if notebook.exists():  # the download keeps the page's ids for the widgets it keeps
            metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
            widgets = metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
            saved = widgets["state"] if widgets else {}
            assert set(saved) <= set(expected), name
    assert pages_with_widgets >= 2  # the ε explorer, and the momentum and batch-size ones


@pytest.mark.parametrize("chapter", numbered_chapters())
def test_chapter_page_is_under_the_height_limit(browser, base_url, chapter):
    """Every chapter page, fully rendered (math typeset, widgets and images loaded), is
    under MAX_CHAPTER_HEIGHT pixels tall in a 1280 px wide window."""
    page, _ = open_page(browser, base_url, f"{chapter}.html")
    try:
        height = page.evaluate("() => document.documentElement.scrollHeight")
    finally:
        page.context.close()
    assert height < MAX_CHAPTER_HEIGHT, f"{chapter}: {height} px tall at 1280 px wide"


#: What a file name looks like: an alt text like this tells a screen reader nothing.
FILE_NAME = re.compile(r"^[\w.-]*\.(png|jpe?g|svg|gif|webp)$|^[0-9a-f]{16,}", re.IGNORECASE)


CHAPTER_PAGES = [p for p in PAGES if p.startswith(("chapters/", "zh/chapters/"))]


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_figures_have_alt_text_that_describes_them(browser, base_url, path):
    """Every figure image (outside the explorers' frames, which carry an HTML caption) has
    an alt text, and it is a description, not a file name, and a numbered caption."""
    page, _ = open_page(browser, base_url, path)
    try:
        images = page.evaluate(
            """() => [...document.querySelectorAll('article img')]
                 .filter(i => !i.closest('.jupyter-widgets'))
                 .map(i => ({src: i.getAttribute('src') || '', alt: i.getAttribute('alt'),
                             number: i.closest('figure')?.querySelector(
                                 'figcaption .caption-number')?.textContent || ''}))"""
        )
    finally:
        page.context.close()
    for image in images:
        alt = (image["alt"] or "").strip()
        name = image["src"].rsplit("/", 1)[-1]
        assert alt, f"{path}: image {name} has no alt text"
        assert alt != name and not FILE_NAME.match(alt), f"{path}: alt text {alt!r} is a file name"
        assert re.match(r"(Fig\.|图) ?\d+(\.\d+)*", image["number"].strip()), (
            f"{path}: image {name} ({alt[:60]}...) has no numbered caption"
        )

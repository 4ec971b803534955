"""The two editions of the site (README, "中文版"): English at the root, Chinese under zh/.

- Every page of each edition has the language switch, a link to the same page in the other
  edition, that exists; ``<html lang>`` is "en" or "zh-CN".
- The glued numbers of a page are the same in both editions (only prose is translated).
- In Chromium: the switch is reached and followed from the keyboard, its accessible name is
  its text; the Chinese edition's search finds Chinese words; the in-page JavaScript's
  labels are Chinese on a Chinese page.
- Statically: the theme's interface words, the sidebar's part captions and the footer's
  author are Chinese on every Chinese page.

The browser checks open the sample of Chinese pages in ``pages.ZH_SAMPLE`` only.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.site.pages import SITE, ZH, ZH_PAGES, open_page, site_pages, unavailable, zh_pages

SWITCH = re.compile(r'<a class="btn btn-sm bnbook-lang-switch" href="([^"]+)" hreflang="([^"]+)"')
LANG = re.compile(r'<html lang="([^"]+)"')
PASTED = re.compile(r'<span class="pasted-text">([^<]*)</span>')
#: A number in a glued text: a glued phrase is translated ("at step 50", "第 50 步"), its
#: numbers are not.
NUMBER = re.compile(r"[-−+]?\d[\d.,]*(?:e[-+]?\d+)?%?")


def glued_numbers(page: str) -> Counter:
    return Counter(n for text in PASTED.findall(page) for n in NUMBER.findall(text))


@pytest.fixture(scope="module")
def zh_site(site) -> Path:
    if not (site / ZH / "index.html").exists():
        unavailable(f"no Chinese edition at {site / ZH}: run `make book`")
    return site / ZH


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_page_links_to_itself_in_the_other_edition(site, zh_site):
    problems = []
    pages = [(p, "en") for p in site_pages()] + [(p, "zh-CN") for p in zh_pages()]
    for path, lang in pages:
        text = _read(site / path)
        found_lang = LANG.search(text)
        if not found_lang or found_lang.group(1) != lang:
            problems.append(f"{path}: <html lang> is not {lang!r}")
        switch = SWITCH.search(text)
        if not switch:
            problems.append(f"{path}: no language switch")
            continue
        href, hreflang = switch.groups()
        target = ((site / path).parent / href).resolve()
        other = path.removeprefix(f"{ZH}/") if lang == "zh-CN" else f"{ZH}/{path}"
        if target != (site / other).resolve() or not target.exists():
            problems.append(f"{path}: the switch leads to {href}, not to {other}")
        if hreflang != ("en" if lang == "zh-CN" else "zh-CN"):
            problems.append(f"{path}: the switch's hreflang is {hreflang}")
    assert len(pages) > 2 and problems == []


@pytest.mark.parametrize("path", site_pages())
def test_the_same_glued_numbers_in_both_editions(site, zh_site, path):
    """Every number glued into the English page is on the Chinese page, as often (in the
    same glued texts or in their translations)."""
    if not (zh_site / path).exists():
        pytest.fail(f"{path} has no Chinese page")
    english = glued_numbers(_read(site / path))
    chinese = glued_numbers(_read(zh_site / path))
    assert chinese == english, f"only in English: {english - chinese}; only in Chinese: " + str(
        chinese - english
    )


@pytest.mark.parametrize("path", ZH_PAGES or ["(no Chinese edition)"])
def test_switch_by_keyboard(browser, base_url, path):
    if not ZH_PAGES:
        unavailable("no Chinese edition: run `make book`")
    page, log = open_page(browser, base_url, path)
    try:
        switch = page.get_by_role("link", name="English", exact=True)
        assert switch.count() == 1
        assert switch.get_attribute("lang") == "en"
        switch.focus()
        assert page.evaluate("() => document.activeElement.lang") == "en"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        english = path.removeprefix(f"{ZH}/")
        assert page.url == base_url + english
        assert page.evaluate("() => document.documentElement.lang") == "en"
        back = page.get_by_role("link", name="中文", exact=True)
        assert back.count() == 1
        back.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == base_url + path
    finally:
        page.context.close()
    assert log.errors == []


def _chinese_term(zh_site: Path) -> str | None:
    """A Chinese word of the Chinese edition's search index (segmented by jieba)."""
    text = _read(zh_site / "searchindex.js")
    index = json.loads(text[text.index("(") + 1 : text.rindex(")")])
    terms = sorted(t for t in index["terms"] if re.search("[\u4e00-\u9fff]{2,}", t))
    return terms[0] if terms else None


def test_chinese_search_finds_chinese_words(browser, base_url, zh_site):
    term = _chinese_term(zh_site)
    if term is None:
        pytest.skip("no Chinese words in the index yet: the .po files are untranslated")
    page, log = open_page(browser, base_url, f"{ZH}/search.html?q={term}")
    try:
        page.wait_for_selector("#search-results ul.search li", timeout=20_000)
        hits = page.locator("#search-results ul.search li").count()
    finally:
        page.context.close()
    assert hits > 0, term
    assert log.errors == []


def test_javascript_labels_are_chinese_on_a_chinese_page(browser, base_url, zh_site):
    path = f"{ZH}/chapters/01_worked_example.html"
    if not (SITE / path).exists():
        pytest.skip("chapter 1 has no Chinese page")
    page, log = open_page(browser, base_url, path)
    try:
        page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
        text = page.locator('[data-bnbook-live="playground"]').inner_text()
    finally:
        page.context.close()
    assert "批量归一化" in text and "Batch norm playground" not in text
    assert log.errors == []


#: Interface words of the theme and of myst-nb that a Chinese page must not show in English
#: (``_ext/i18n.py`` translates them), and the theme's traditional-character "print".
ENGLISH_INTERFACE = (
    ">Show code cell",
    ">Hide code cell",
    '"Search this book..."',
    '"Toggle primary sidebar"',
    '"Launch interactive content"',
    '"Link to this heading"',
    "列印成",
)


def test_chinese_pages_have_a_chinese_interface(site, zh_site):
    left = {
        path: [words for words in ENGLISH_INTERFACE if words in _read(site / path)]
        for path in zh_pages()
    }
    assert {path: words for path, words in left.items() if words} == {}


CAPTION = re.compile(r'<p aria-level="2" class="caption" role="heading">'
                     r'<span class="caption-text">([^<]*)</span>')  # fmt: skip
AUTHOR = re.compile(r'<p class="component-author">\s*([^<]*?)\s*</p>')
HAN = re.compile(r"[\u4e00-\u9fff]")


def test_chinese_pages_have_chinese_sidebar_captions_and_author(site, zh_site):
    """The sidebar's part captions (``_toc.yml``, translated by ``_ext/i18n.py``) and the
    footer's author (``_config_zh.yml``) are Chinese on every Chinese page."""
    english = {}
    for path in zh_pages():
        text = _read(site / path)
        captions = CAPTION.findall(text)
        authors = AUTHOR.findall(text)
        assert captions and authors, path
        left = [
            words
            for words in captions + authors
            if not HAN.search(words) or re.search("[A-Za-z]{3,}", words.replace("bnbook", ""))
        ]
        if left:
            english[path] = left
    assert english == {}

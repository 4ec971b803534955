"""Every page reads well at 1280 px: code fits, numbers stay whole, images are sharp.

Reads the already built ``_build/html`` (``make test`` builds it first; ``BNBOOK_SITE``
points elsewhere), opens each page in headless Chromium at 1280 px wide with every folded
block opened (hidden cell inputs and outputs, dropdowns, solutions: what a reader can
unfold must read well too), and checks:

- no code block (``pre``: cell inputs, outputs, included source) scrolls sideways;
- no number in a table cell breaks across two lines ("1.7e-" / "07"), and no table is
  wider than the text column (so none scrolls sideways either);
- every bitmap image shown (``png``, ``jpeg``, ``gif``, ``webp``; the figures and the
  explorers' frames) has at least :data:`MIN_PIXEL_RATIO` image pixels per CSS pixel of
  its displayed width, so it is sharp on a high-density screen.

The text size inside the figures is checked where they are drawn (``tests/book/test_style.py``).
"""

from __future__ import annotations

import pytest

from tests.site.pages import PAGES, open_page, without_transitions

#: Image pixels per displayed CSS pixel, at least (the book draws at 2, ``bnbook.style``).
MIN_PIXEL_RATIO = 1.5

#: Unfold everything a reader can unfold: <details> (myst-nb's hidden inputs and outputs,
#: dropdowns, exercise solutions) and sphinx-togglebutton's hidden blocks.
OPEN_ALL = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
    document.querySelectorAll('.admonition.toggle-hidden, .toggle.toggle-hidden')
        .forEach(e => e.classList.remove('toggle-hidden'));
}"""

MEASURE = r"""() => {
    const visible = e => e.getClientRects().length > 0
        && getComputedStyle(e).visibility !== 'hidden';
    const firstLine = e =>
        (e.innerText.split('\n').find(l => l.trim()) || '').trim().slice(0, 60);
    const scrolling = [...document.querySelectorAll('article pre')]
        .filter(visible)
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => {
            const longest = e.innerText.split('\n')
                .reduce((a, b) => (b.length > a.length ? b : a), '');
            return `${e.scrollWidth} > ${e.clientWidth} px: ${longest.slice(0, 90)}`;
        });
    const column = (document.querySelector('article') || document.body)
        .getBoundingClientRect().right;
    const wide = [...document.querySelectorAll('article table')]
        .filter(visible)
        .filter(t => t.getBoundingClientRect().right > column + 1
                     || t.parentElement.scrollWidth > t.parentElement.clientWidth + 1)
        .map(t => `${Math.round(t.getBoundingClientRect().width)} px: ${firstLine(t)}`);
    // a number broken over two lines: its text range has more than one line box
    const numberPattern = /[-+−]?\d[\d.,]*(?:e[-+−]?\d+)?%?/gi;
    const wrapped = [];
    for (const cell of document.querySelectorAll('article td, article th')) {
        if (!visible(cell)) continue;
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const match of node.textContent.matchAll(numberPattern)) {
                if (match[0].length < 2) continue;
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                const tops = new Set([...range.getClientRects()]
                    .filter(r => r.width > 0).map(r => Math.round(r.top)));
                if (tops.size > 1) wrapped.push(`${match[0]} in "${firstLine(cell)}"`);
            }
        }
    }
    const bitmap = /\.(png|jpe?g|gif|webp)(\?|$)|^data:image\/(png|jpeg|gif|webp)|^blob:/i;
    const blurry = [...document.querySelectorAll('article img')]
        .filter(visible)
        .filter(i => bitmap.test(i.getAttribute('src') || i.src))
        .map(i => ({src: (i.getAttribute('src') || '').slice(-40),
                    natural: i.naturalWidth, shown: i.getBoundingClientRect().width}))
        .filter(i => i.shown > 0 && i.natural < MIN * i.shown)
        .map(i => `${i.src}: ${i.natural} px shown at ${i.shown.toFixed(0)} px`);
    return {scrolling, wrapped, wide, blurry};
}"""


@pytest.mark.parametrize("path", PAGES)
def test_page_layout_at_1280px(browser, base_url, path):
    page, _ = open_page(browser, base_url, path)
    try:
        without_transitions(page)
        page.evaluate(OPEN_ALL)  # measuring below forces the layout at once: no wait needed
        found = page.evaluate(MEASURE.replace("MIN", str(MIN_PIXEL_RATIO)))
    finally:
        page.context.close()
    problems = []
    if found["scrolling"]:
        problems.append("code blocks that scroll sideways:\n  " + "\n  ".join(found["scrolling"]))
    if found["wrapped"]:
        problems.append("numbers broken over two lines:\n  " + "\n  ".join(found["wrapped"]))
    if found["wide"]:
        problems.append("tables wider than the column:\n  " + "\n  ".join(found["wide"]))
    if found["blurry"]:
        problems.append(
            f"bitmaps with fewer than {MIN_PIXEL_RATIO} pixels per displayed pixel:\n  "
            + "\n  ".join(found["blurry"])
        )
    assert not problems, f"{path} at 1280 px:\n" + "\n".join(problems)

"""The playground and the explorers for every reader: labels follow the page's language,
controls are named, axe-core (npm's, from node_modules) finds no WCAG 2.2 AA violation in
them, light or dark, and Jupyter shows nothing broken."""

from __future__ import annotations

import json
import re

import pytest

from tests.site.live import (
    AXE_TAGS,
    EXPLORERS,
    LIVE_PAGES,
)
from tests.site.pages import ROOT, SITE, open_page, unavailable

# -- language, keyboard, screen readers, Jupyter ------------------------------------------------


def test_labels_follow_the_page_language(playground_page):
    labels = playground_page.evaluate(
        """() => {
            document.documentElement.lang = 'zh-CN';
            const box = document.createElement('div');
            box.innerHTML = '<div data-bnbook-live="playground"></div>'
                          + '<div data-bnbook-live="momentum"></div>';
            document.body.append(box);
            const made = window.bnlibjs.mount(box);
            const text = box.innerText;
            box.remove();
            document.documentElement.lang = 'en';
            return {count: made.length, text};
        }"""
    )
    assert labels["count"] == 2
    for term in (
        "批量归一化",
        "运行均值",
        "运行方差",
        "动量",
        "训练模式",
        "评估模式",
        "均值",
        "输出",
    ):
        assert term in labels["text"], term
    assert "running statistics" not in labels["text"]


def axe_violations(page, dark: bool) -> dict:
    """axe-core's violations of AXE_TAGS in the page's playground and explorers."""
    axe = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    if not axe.exists():
        unavailable("node_modules/axe-core is missing: run `npm ci` (make book does)")
    if dark:
        page.evaluate("() => document.documentElement.dataset.theme = 'dark'")
    page.add_script_tag(path=str(axe))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run({include: [['.bnbook-live']]},
                                         {runOnly: {type: 'tag', values: tags}});
            const checked = result.passes.reduce((k, rule) => k + rule.nodes.length, 0);
            return {checked, violations: result.violations.map(v => ({id: v.id, nodes: v.nodes
                .map(n => n.target.join(' ') + ': ' + n.failureSummary).slice(0, 3)}))};
        }""",
        AXE_TAGS,
    )


PAGE_CHECK = """() => ({
    api: typeof window.bnlibjs?.forward + typeof window.bnlibjs?.backward,
    mounted: window.bnlibjs.instances.map(i => i.name),
    asked: [...document.querySelectorAll('[data-bnbook-live]')].map(e => e.dataset.bnbookLive),
    controls: [...document.querySelectorAll('.bnbook-live input, .bnbook-live button')]
        .map(e => ({
            type: e.type,
            named: !!(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()),
            valuetext: e.getAttribute('aria-valuetext'),
            tabbable: e.tabIndex >= 0,
        })),
    liveRegions: document.querySelectorAll('.bnbook-live [aria-live]').length,
    duplicateIds: [...document.querySelectorAll('.bnbook-live [id]')].map(e => e.id)
        .filter(id => document.querySelectorAll(`[id="${id}"]`).length > 1),
    groupsNamedByOwnTitle: [...document.querySelectorAll('.bnbook-live [role="group"]')]
        .every(g => g.querySelector('#' + g.getAttribute('aria-labelledby'))),
})"""


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("path", LIVE_PAGES)
def test_page_has_bnlibjs_named_controls_and_no_wcag_violation(browser, base_url, path, dark):
    """window.bnlibjs is there and mounted every element that asks; every control is in the
    tab order with an accessible name, every slider has a value text, the numbers are in a
    live region; and axe-core finds no WCAG 2.2 AA violation in them, light and dark."""
    page, log = open_page(browser, base_url, path)
    try:
        state = page.evaluate(PAGE_CHECK)
        result = axe_violations(page, dark)
    finally:
        page.context.close()
    assert state["api"] == "functionfunction"
    assert state["asked"] and state["mounted"] == state["asked"]
    assert state["controls"] and state["liveRegions"] >= 1
    assert state["duplicateIds"] == [] and state["groupsNamedByOwnTitle"]
    assert all(c["named"] and c["tabbable"] for c in state["controls"])
    assert all(c["valuetext"] for c in state["controls"] if c["type"] == "range")
    assert log.errors == [] and log.failed == [] and log.offsite == []
    assert result["checked"] > 20  # axe did look at the controls
    assert result["violations"] == [], json.dumps(
        result["violations"], indent=1, ensure_ascii=False
    )


def test_jupyter_shows_nothing_broken(site):
    """In a downloaded notebook the page's elements are dropped (their Markdown cells are
    tagged page-only) or stay empty <div>s, which Jupyter renders as nothing; the explorers
    for Jupyter are the code cells beside them."""
    nbformat = pytest.importorskip("nbformat")
    jupyter_twins = {
        EXPLORERS["eps"]: ["widgets.eps_explorer()"],
        EXPLORERS["momentum"]: ["widgets.momentum_explorer()", "widgets.batch_size_explorer()"],
    }
    for path in LIVE_PAGES:
        notebook = nbformat.read(SITE / "_sources" / path.replace(".html", ".ipynb"), 4)
        for cell in notebook.cells:
            for match in re.finditer(r"<div[^>]*data-bnbook-live[^>]*>(.*?)</div>", cell.source):
                assert cell.cell_type == "markdown" and match.group(1) == "", path
        code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        assert all(call in code for call in jupyter_twins.get(path, [])), path
    for path in LIVE_PAGES:  # and in the chapters' sources, a cell of their own, page-only
        source = (ROOT / path.replace(".html", ".md")).read_text(encoding="utf-8")
        cells = re.findall(
            r'\+\+\+ \{"tags": \["page-only"\]\}\n\n(<div[^\n]*></div>)\n\n(?:\+\+\+|```)', source
        )
        assert cells and all("data-bnbook-live" in div for div in cells), path

"""WCAG 2.2 AA on every page, measured by axe-core in Chromium, in light and dark mode.

axe-core comes from npm (``package.json``'s devDependencies, pinned in package-lock.json;
``make book`` runs ``npm ci``). The test injects it from ``node_modules/`` into each page
after the page has settled (math typeset, widgets rendered, images loaded): it is never part
of the site. Every rule tagged wcag2a, wcag2aa, wcag21a, wcag21aa or wcag22aa must pass, in
the theme's light mode and in its dark mode (pydata-sphinx-theme's ``data-theme="dark"`` on
``<html>``, what its theme switch sets).

Beyond what axe sees: every slider of the explorers can be reached with Tab, moved with the
arrow keys, and has an accessible name and a value text; MathJax's assistive MathML is on.
"""

from __future__ import annotations

import pytest

from tests.site.pages import PAGES, ROOT, open_page, unavailable, without_transitions

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page) -> list[dict]:
    """axe-core's violations of the WCAG A and AA rules on the page as it is now."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                    resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => ({
                    target: n.target.join(' '), summary: n.failureSummary})),
                count: v.nodes.length}));
        }""",
        WCAG_AA,
    )


def describe(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}, {v['count']} elements): {v['help']}")
        for node in v["nodes"]:
            summary = " ".join((node["summary"] or "").split())[:300]
            lines.append(f"    {node['target'][:120]}: {summary}")
    return "\n".join(lines)


def set_mode(page, mode: str) -> None:
    """The theme's own switch: ``data-theme`` (and ``data-mode``) on <html>."""
    without_transitions(page)  # colours at their final values, never mid-transition
    page.evaluate(
        """(mode) => {
            document.documentElement.dataset.theme = mode;
            document.documentElement.dataset.mode = mode;
            document.documentElement.getBoundingClientRect();  // restyle now
        }""",
        mode,
    )


@pytest.fixture(scope="module")
def axe_source():
    if not AXE.exists():
        unavailable(f"{AXE} is missing: run `npm ci` (make book does)")
    return AXE


@pytest.mark.parametrize("path", PAGES)
def test_page_meets_wcag_aa_in_light_and_dark_mode(browser, base_url, axe_source, path):
    page, _ = open_page(browser, base_url, path)
    try:
        found = {}
        for mode in ("light", "dark"):
            set_mode(page, mode)
            found[mode] = axe_violations(page)
    finally:
        page.context.close()
    report = "\n".join(f"[{mode}]\n{describe(v)}" for mode, v in found.items() if v)
    assert not report, f"{path}: WCAG 2.2 AA violations (axe-core):\n{report}"


def slider_pages() -> list[str]:
    from tests.site.pages import SITE

    pages = [p for p in PAGES if p.startswith(("chapters/", "zh/chapters/"))]
    found = [p for p in pages if "slider" in (SITE / p).read_text(encoding="utf-8")]
    return found or ["(no slider found)"]


@pytest.mark.parametrize("path", slider_pages())
def test_every_slider_works_from_the_keyboard(browser, base_url, path):
    """Tab reaches each slider; it has a name and a value text; the arrow keys change it."""
    if path == "(no slider found)":
        pytest.skip("no page of the built book has a slider")
    page, log = open_page(browser, base_url, path)
    try:
        sliders = page.locator('[role="slider"]')
        count = sliders.count()
        assert count >= 1, f"{path}: no element with role=slider"
        reached = set()
        page.locator("body").focus()
        for _ in range(600):  # Tab through the page, noting every slider that gets focus
            page.keyboard.press("Tab")
            index = page.evaluate(
                """() => [...document.querySelectorAll('[role="slider"]')]
                          .indexOf(document.activeElement)"""
            )
            if index >= 0:
                reached.add(index)
            if len(reached) == count:
                break
        assert reached == set(range(count)), (
            f"{path}: Tab never reaches sliders {set(range(count)) - reached}"
        )
        for i in range(count):
            slider = sliders.nth(i)
            slider.scroll_into_view_if_needed()
            slider.focus()
            name = slider.evaluate(
                """s => s.getAttribute('aria-label') || (s.getAttribute('aria-labelledby') || '')
                        .split(' ').map(id => document.getElementById(id)?.textContent || '')
                        .join(' ').trim()"""
            )
            assert name.strip(), f"{path}: slider {i} has no accessible name"
            before = slider.get_attribute("aria-valuenow")
            text_before = slider.get_attribute("aria-valuetext")
            assert text_before, f"{path}: slider {i} ({name}) has no aria-valuetext"
            key = "ArrowRight" if before != slider.get_attribute("aria-valuemax") else "ArrowLeft"
            slider.press(key)
            page.wait_for_function(
                "([s, v]) => s.getAttribute('aria-valuenow') !== v",
                arg=[slider.element_handle(), before],
                timeout=5_000,
            )
            assert slider.get_attribute("aria-valuetext") != text_before, (
                f"{path}: slider {i} ({name}): the value text does not follow the value"
            )
    finally:
        page.context.close()
    assert log.errors == [], f"console errors while using the sliders: {log.errors}"


def test_mathjax_assistive_mathml_is_on(browser, base_url):
    """Screen readers read the formulas: MathJax puts hidden MathML beside each one."""
    page, _ = open_page(browser, base_url, "chapters/01_worked_example.html")
    try:
        counts = page.evaluate(
            """() => ({math: document.querySelectorAll('mjx-container').length,
                       assistive: document.querySelectorAll('mjx-container mjx-assistive-mml math')
                                          .length})"""
        )
    finally:
        page.context.close()
    assert counts["math"] > 0
    assert counts["assistive"] == counts["math"], counts


def contrast(color, background="white") -> float:
    """WCAG's contrast ratio of two colours."""
    from matplotlib.colors import to_rgb

    def luminance(c):
        channels = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in to_rgb(c)]
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    high, low = sorted((luminance(color), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_figure_colours_have_3_to_1_contrast_on_the_figure_background():
    from bnbook import style, train_figures

    colours = [*style.PALETTE, style.GREY, *style.CHANNEL_COLORS, *train_figures.COLORS.values()]
    weak = {c: round(contrast(c), 2) for c in colours if contrast(c) < 3}
    assert weak == {}, f"colours under 3:1 against white: {weak}"


def test_lines_are_told_apart_without_colour():
    """In a figure with several coloured lines, no two legend entries share a line style
    and marker: a reader who cannot tell the colours apart can still tell the lines apart."""
    from bnbook import running_figures

    figure = running_figures.ema_weights_figure([0.01, 0.1, 0.3, 0.9])
    for ax in figure.axes:
        handles, labels = ax.get_legend_handles_labels()
        # the dash pattern itself: get_linestyle() calls every custom pattern "--"
        looks = [(str(h._unscaled_dash_pattern), str(h.get_marker())) for h in handles]
        assert len(set(looks)) == len(looks), dict(zip(labels, looks, strict=True))
        for line in ax.get_lines():
            assert contrast(line.get_color(), ax.get_facecolor()) >= 3, line.get_color()

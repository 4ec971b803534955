"""Chapter 1's playground, driven in Chromium and checked against PyTorch and bnlib: it opens
with the numbers PyTorch prints for the blog's tensor; typing into its grid, changing its
shape and pressing "Another batch" give what bnlib gives."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.site.live import (
    BLOG_X,
    PLAYGROUND,
    TORCH_WORDS,
    instance,
    live,
)
from tests.site.pages import open_page

# -- the playground -------------------------------------------------------------------------


def shown_numbers(page) -> dict:
    """The numbers the playground shows: the output grid and the statistics table."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('[data-bnbook-live="playground"]');
            const cells = [...root.querySelectorAll('.bnbook-output .bnbook-num')]
                .map(e => e.textContent);
            const rows = [...root.querySelectorAll('table.bnbook-stats tbody tr')]
                .map(r => [...r.querySelectorAll('td.bnbook-num')].map(td => td.textContent));
            const alert = root.querySelector('[role="alert"]').textContent;
            return {y: cells, rows, alert};
        }"""
    )


def torch_printed(values) -> list[str]:
    """As torch prints a tensor's entries: 4 decimals, no "-0.0000"."""
    return [re.sub(r"^-(0\.0+)$", r"\1", f"{float(v):.4f}") for v in np.ravel(values)]


def torch_expected(x: np.ndarray, momentum=0.1, steps=()) -> dict:
    """What torch.nn.BatchNorm2d(C, affine=False) gives for x after the batches ``steps``."""
    bn = torch.nn.BatchNorm2d(x.shape[1], affine=False, momentum=momentum, dtype=torch.float64)
    for batch in steps:
        bn(torch.from_numpy(np.asarray(batch, np.float64)))
    xt = torch.from_numpy(x.astype(np.float64))
    y = bn(xt).detach().numpy()
    var_b, mean = torch.var_mean(xt, dim=(0, 2, 3), correction=0)
    var_u = torch.var(xt, dim=(0, 2, 3), correction=1)
    columns = [mean, var_b, var_u, bn.running_mean, bn.running_var]
    rows = [torch_printed([col[c].item() for col in columns]) for c in range(x.shape[1])]
    return {"y": torch_printed(y), "rows": rows}


def reset_playground(page) -> None:
    """The blog's tensor, a fresh module, training mode, torch's defaults."""
    root = live(page, "playground")
    root.get_by_role("button", name="The blog's tensor").click()
    root.get_by_label("None (cumulative average)").uncheck()
    root.get_by_label("momentum", exact=True).fill("0.1")
    root.get_by_label("ε (eps)", exact=True).fill("1e-5")
    root.get_by_label("training mode, bn.train()").check()
    root.get_by_role("button", name="Reset running statistics").click()


def test_playground_opens_with_what_pytorch_prints(browser, base_url):
    page, log = open_page(browser, base_url, PLAYGROUND)
    try:
        page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
        shown = shown_numbers(page)
    finally:
        page.context.close()
    # the chapter's own cell: bn = torch.nn.BatchNorm2d(C, affine=False); y_torch = bn(x)
    bn = torch.nn.BatchNorm2d(2, affine=False)
    y_torch = bn(torch.from_numpy(BLOG_X)).detach().numpy()
    assert shown["y"] == torch_printed(y_torch)
    assert [row[3:] for row in shown["rows"]] == [
        torch_printed([bn.running_mean[c].item(), bn.running_var[c].item()]) for c in range(2)
    ]
    assert shown == {"alert": "", **torch_expected(BLOG_X)}
    assert log.errors == []


def test_typing_into_the_grid_recomputes(playground_page):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    x = BLOG_X.astype(np.float64).copy()
    for (n, c, h, w), value in [
        ((1, 1, 1, 0), "7"),
        ((0, 0, 0, 1), "-2.5"),
        ((1, 0, 1, 1), "1e-3"),
    ]:
        cell = root.get_by_label(f"x, image {n}, channel {c}, row {h}, column {w}", exact=True)
        cell.fill(value)
        x[n, c, h, w] = float(value)
        assert shown_numbers(playground_page) == {"alert": "", **torch_expected(x)}
    before = shown_numbers(playground_page)
    cell.fill("abc")  # not a number: marked, and nothing changes
    assert cell.get_attribute("aria-invalid") == "true"
    assert shown_numbers(playground_page) == before


def test_shape_and_one_value_per_channel(playground_page):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    for label in ("images N", "height H", "width W"):
        root.get_by_label(label, exact=True).fill("1")
    shown = shown_numbers(playground_page)
    assert shown["alert"].startswith(TORCH_WORDS) and set(shown["y"]) == {"—"}
    root.get_by_label("evaluation mode, bn.eval()").check()  # running statistics: fine
    x = page_x(playground_page)
    assert x.shape == (1, 2, 1, 1)
    shown = shown_numbers(playground_page)
    assert shown["alert"] == ""
    assert shown["y"] == torch_printed(x / np.sqrt(1 + 1e-5))  # fresh module: 0 and 1
    root.get_by_label("channels C", exact=True).fill("3")
    assert len(shown_numbers(playground_page)["rows"]) == 3


def page_x(page) -> np.ndarray:
    state = page.evaluate(
        f"() => {{ const s = {instance(page, 'playground')}.state();"
        " return {shape: s.shape, x: Array.from(s.x)}; }"
    )
    return np.array(state["x"]).reshape(state["shape"])


@pytest.mark.parametrize("momentum", ["0.3", "None"])
def test_another_batch_moves_the_running_statistics_as_torch(playground_page, momentum):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    if momentum == "None":
        root.get_by_label("None (cumulative average)").check()
    else:
        root.get_by_label("momentum", exact=True).fill(momentum)
    batches = [page_x(playground_page)]
    for _ in range(3):
        root.get_by_role("button", name="Another batch").click()
        batches.append(page_x(playground_page))
    assert not np.array_equal(batches[-1], batches[-2])  # a new batch each time
    p = None if momentum == "None" else float(momentum)
    expected = torch_expected(batches[-1], momentum=p, steps=batches[:-1])
    assert shown_numbers(playground_page) == {"alert": "", **expected}

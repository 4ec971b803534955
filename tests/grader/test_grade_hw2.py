"""The grader on the second homework (09_homework_2): honest work scores full marks, the
stubs zero, and submissions crafted with the classic mistakes get each mistake named and
lose what the rubric says for it, keeping the rest. One grading run (two jobs) grades them
all; the tests below read its reports."""

from __future__ import annotations

import copy
import csv
import json
import textwrap

import jupytext
import nbformat
import pytest

from grader import editions, grade, sandbox
from grader import homeworks as registry
from grader.flags import TORCH_IN_NUMPY_PART

HW = registry.HOMEWORKS["09_homework_2"]
PARTS = {p.function: p for p in HW.parts}
LIMITS = sandbox.Limits(total=180, cell=60, part=30)

pytestmark = pytest.mark.xdist_group("grader")

SOLUTIONS = {  # as a student would write them
    "group_norm_forward": """
        def group_norm_forward(x, num_groups, gamma, beta, eps):
            n, c, h, w = x.shape
            g = x.reshape(n, num_groups, c // num_groups, h, w)
            mean = g.mean(axis=(2, 3, 4), keepdims=True)
            var = g.var(axis=(2, 3, 4), keepdims=True)
            y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
            return gamma[None, :, None, None] * y + beta[None, :, None, None]
        """,
    "group_norm_backward": """
        def group_norm_backward(dy, x, num_groups, gamma, eps):
            n, c = x.shape[:2]
            r = x.reshape(n, num_groups, -1)
            inv = 1 / np.sqrt(r.var(axis=2, keepdims=True) + eps)
            xhat = (r - r.mean(axis=2, keepdims=True)) * inv
            g = (dy * gamma[None, :, None, None]).reshape(r.shape)
            dx = inv * (g - g.mean(axis=2, keepdims=True)
                        - xhat * (g * xhat).mean(axis=2, keepdims=True))
            dgamma = (dy * xhat.reshape(x.shape)).sum(axis=(0, 2, 3))
            return dx.reshape(x.shape), dgamma, dy.sum(axis=(0, 2, 3))
        """,
    "merge_stats": """
        def merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
            n = count_a + count_b
            delta = mean_b - mean_a
            return n, mean_a + delta * count_b / n, m2_a + m2_b + delta**2 * count_a * count_b / n
        """,
    "recalibrate": """
        def recalibrate(model, batches):
            layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
            for layer in layers:
                layer.reset_running_stats()
                layer.momentum = None
            model.train()
            with torch.no_grad():
                for batch in batches:
                    model(batch)
            model.eval()
            return model
        """,
    "fold_bn": """
        def fold_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
            s = gamma / np.sqrt(running_var + eps)
            b = 0 if conv_b is None else conv_b
            return conv_w * s[:, None, None, None], s * (b - running_mean) + beta
        """,
    "foldable_orders": """
        def foldable_orders():
            return True, False, True
        """,
}

# Each crafted submission: the honest solutions, with these functions rewritten, each with
# one classic mistake, and the mistake each must be diagnosed as.
CRAFTED = {
    "mistakes_a": {
        "group_norm_backward": (
            SOLUTIONS["group_norm_backward"].replace(
                "(g - g.mean(axis=2, keepdims=True)\n", "(g\n"
            ),
            "gnb_no_mean_path",
        ),
        "merge_stats": (
            SOLUTIONS["merge_stats"].replace(" + delta**2 * count_a * count_b / n", ""),
            "merge_no_delta_term",
        ),
        "recalibrate": (
            SOLUTIONS["recalibrate"].replace("layer.momentum = None", "pass"),
            "recal_momentum",
        ),
        "fold_bn": (
            SOLUTIONS["fold_bn"].replace("np.sqrt(running_var + eps)", "np.sqrt(running_var)"),
            "fold_no_eps",
        ),
        "foldable_orders": (
            SOLUTIONS["foldable_orders"].replace("True, False, True", "True, True, True"),
            "orders_zero_pad_foldable",
        ),
    },
    "mistakes_b": {
        "group_norm_backward": (
            """
            def group_norm_backward(dy, x, num_groups, gamma, eps):
                # batch norm's compact backward, with the group's sums
                n, c = x.shape[:2]
                r = x.reshape(n, num_groups, -1)
                inv = 1 / np.sqrt(r.var(axis=2, keepdims=True) + eps)
                xhat = (r - r.mean(axis=2, keepdims=True)) * inv
                d = dy.reshape(r.shape)
                dx = inv * (d - d.mean(axis=2, keepdims=True)
                            - xhat * (d * xhat).mean(axis=2, keepdims=True))
                dx = dx.reshape(x.shape) * gamma[None, :, None, None]
                dgamma = (dy * xhat.reshape(x.shape)).sum(axis=(0, 2, 3))
                return dx, dgamma, dy.sum(axis=(0, 2, 3))
            """,
            "gnb_gamma_outside_sums",
        ),
        "merge_stats": (
            SOLUTIONS["merge_stats"].replace(
                "mean_a + delta * count_b / n", "(mean_a + mean_b) / 2"
            ),
            "merge_unweighted_mean",
        ),
        "recalibrate": (
            SOLUTIONS["recalibrate"].replace("            model.eval()\n", ""),
            "recal_left_in_train_mode",
        ),
        "fold_bn": (
            SOLUTIONS["fold_bn"].replace("s * (b - running_mean) + beta", "s * (b - running_mean)"),
            "fold_beta_dropped",
        ),
        "foldable_orders": (
            SOLUTIONS["foldable_orders"].replace("True, False, True", "True, False, False"),
            "orders_no_pad_not_foldable",
        ),
    },
    "mistakes_c": {
        "group_norm_backward": (
            SOLUTIONS["group_norm_backward"].replace("(dy * xhat.reshape(x.shape))", "(dy * x)"),
            "gnb_dgamma_uses_x",
        ),
        "merge_stats": (
            """
            def merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
                n = count_a + count_b
                mean = (count_a * mean_a + count_b * mean_b) / n
                var = (m2_a / count_a + m2_b / count_b) / 2  # the two variances, averaged
                return n, mean, var * n
            """,
            "merge_averaged_variances",
        ),
        "recalibrate": (
            SOLUTIONS["recalibrate"].replace("layer.reset_running_stats()", "pass"),
            "recal_no_reset",
        ),
        "fold_bn": (
            SOLUTIONS["fold_bn"].replace("np.sqrt(running_var + eps)", "(running_var + eps)"),
            "fold_var_not_std",
        ),
    },
    "mistakes_d": {
        "group_norm_backward": (
            """
            def group_norm_backward(dy, x, num_groups, gamma, eps):
                n, c = x.shape[:2]
                r = x.reshape(n, num_groups, -1)
                inv = 1 / np.sqrt(r.var(axis=2, keepdims=True) + eps)
                xhat = ((r - r.mean(axis=2, keepdims=True)) * inv).reshape(x.shape)
                inv = inv.repeat(c // num_groups, axis=1)[..., None]  # (N, C, 1, 1)
                dx = dy * gamma[None, :, None, None] * inv
                dgamma = (dy * xhat).sum(axis=(0, 2, 3))
                return dx, dgamma, dy.sum(axis=(0, 2, 3))
            """,
            "gnb_no_mean_var_paths",
        ),
        "recalibrate": (
            SOLUTIONS["recalibrate"].replace(
                "            with torch.no_grad():\n                for batch in batches:\n"
                "                    model(batch)\n",
                "            for batch in batches:\n                model(batch)\n",
            ),
            "recal_with_grad",
        ),
        "fold_bn": (
            SOLUTIONS["fold_bn"].replace("b = 0 if conv_b is None else conv_b", "b = 0"),
            "fold_conv_bias_dropped",
        ),
    },
    "mistakes_e": {
        "recalibrate": (
            SOLUTIONS["recalibrate"].replace("reset_running_stats()", "reset_parameters()"),
            "recal_weights_touched",
        ),
        "group_norm_backward": (
            SOLUTIONS["group_norm_backward"].replace(
                "gamma[None, :, None, None]",
                "np.repeat(gamma[:num_groups], c // num_groups)[None, :, None, None]",
            ),
            "gnb_gamma_per_group",
        ),
    },
}
# group_norm_forward through torch: right values, flagged
TORCH_FORWARD = """
    def group_norm_forward(x, num_groups, gamma, beta, eps):
        y = torch.nn.functional.group_norm(
            torch.from_numpy(x), num_groups, torch.from_numpy(gamma), torch.from_numpy(beta), eps
        )
        return y.numpy()
    """


def student_edition():
    nb = jupytext.read(HW.source)
    return editions.plain_markdown(editions.student_edition(nb, HW.name))


def replace_function(nb, name: str, code: str):
    nb = copy.deepcopy(nb)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source]
    cell.source = textwrap.dedent(code).strip()
    return nb


def honest_notebook():
    nb = student_edition()
    for name, code in SOLUTIONS.items():
        nb = replace_function(nb, name, code)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    honest = honest_notebook()
    answers = [c for c in honest.cells if c.source.startswith(grade.ANSWER_PREFIX)]
    answers[0].source = f"{grade.ANSWER_PREFIX} zero padding is not batch-normalized."
    nbformat.write(honest, subs / "honest.ipynb")
    nbformat.write(student_edition(), subs / "stubs.ipynb")
    for name, mistakes in CRAFTED.items():
        nb = honest_notebook()
        for function, (code, _) in mistakes.items():
            nb = replace_function(nb, function, code)
        if name == "mistakes_e":
            nb = replace_function(nb, "group_norm_forward", TORCH_FORWARD)
        (subs / name).mkdir()
        nbformat.write(nb, subs / name / "09_homework_2.ipynb")

    out = tmp_path_factory.mktemp("grades")
    grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True)
    reports = {}
    for path in (out / "reports").glob("*.json"):
        report = json.loads(path.read_text())
        reports[report["submission"].split("/")[0].removesuffix(".ipynb")] = report
    return out, reports


def test_the_second_homework_is_registered_with_its_parts_and_prices():
    assert [(p.name, p.function, p.points) for p in HW.parts] == [
        ("group_norm", "group_norm_forward", 3),
        ("group_norm_backward", "group_norm_backward", 6),
        ("merge_stats", "merge_stats", 3),
        ("recalibrate", "recalibrate", 4),
        ("fold_bn", "fold_bn", 3),
        ("fold_orders", "foldable_orders", 1),
    ]
    assert HW.max_score == 20 and HW.source.is_file()
    for part in HW.parts:
        keys = {m.key for m in part.check.mistakes}
        assert keys <= set(part.deductions), keys - set(part.deductions)  # each has a price
        assert all(0 < part.deductions[k] <= part.points for k in keys)
        assert registry.DTYPE in part.deductions and registry.IN_PLACE in part.deductions
    assert "recalibration_problem" in registry.check_functions()


def test_honest_work_scores_full_marks_and_stubs_zero(graded):
    out, reports = graded
    honest = reports["honest"]
    assert honest["homework"] == "09_homework_2" and honest["status"] == "graded"
    assert honest["score"] == honest["max_score"] == 20, json.dumps(honest["parts"], indent=1)
    for part in honest["parts"].values():
        assert part["points"] == part["max_points"] and part["deductions"] == []
    assert honest["flags"] == []  # torch in part 3 is expected, not flagged
    assert any("zero padding" in a.get("answer", "") for a in honest["answers"])
    stubs = reports["stubs"]
    assert stubs["status"] == "graded" and stubs["score"] == 0
    assert all("Not implemented yet" in p["report"] for p in stubs["parts"].values())
    with open(out / "answers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert any("zero padding" in row["answer"] for row in rows)


@pytest.mark.parametrize("submission", CRAFTED)
def test_each_classic_mistake_is_named_and_costs_the_rubrics_points(graded, submission):
    out, reports = graded
    report = reports[submission]
    assert report["status"] == "graded", report
    expected_total = HW.max_score
    feedback = next(p for p in (out / "feedback").glob("*.md") if submission in p.name)
    page = feedback.read_text()
    for function, part in PARTS.items():
        got = report["parts"][part.name]
        if function not in CRAFTED[submission]:
            assert got["points"] == part.points, (function, got["report"])
            continue
        key = CRAFTED[submission][function][1]
        assert [d["mistake"] for d in got["diagnoses"]] == [key], (function, got["report"])
        price = part.deductions[key]
        assert got["points"] == max(0.0, part.points - price), (function, got["deductions"])
        assert [d["key"] for d in got["deductions"]] == [key]
        message = next(m.message for m in part.check.mistakes if m.key == key)
        assert message[:40] in page
        expected_total -= part.points - got["points"]
    assert report["score"] == pytest.approx(expected_total)


def test_torch_in_a_numpy_part_is_flagged_and_scores_what_it_computes(graded):
    _, reports = graded
    report = reports["mistakes_e"]
    assert report["flags"] == [TORCH_IN_NUMPY_PART]
    assert report["parts"]["group_norm"]["points"] == 3
    assert all(
        TORCH_IN_NUMPY_PART not in r["flags"] for k, r in reports.items() if k != "mistakes_e"
    )

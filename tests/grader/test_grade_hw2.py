"""The grader on the second homework (09_homework_2): honest work scores full marks, and a
partly wrong submission keeps what is right, loses the rubric's points for each diagnosed
mistake, and zero for what is not done. One grading run (two jobs) grades both."""

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

HW = registry.HOMEWORKS["09_homework_2"]
LIMITS = sandbox.Limits(total=90, cell=10, part=5)

pytestmark = pytest.mark.xdist_group("grader")

SOLUTIONS = {  # as a student would write them: NumPy only
    "group_norm_forward": """
        def group_norm_forward(x, num_groups, gamma, beta, eps):
            n, c, h, w = x.shape
            g = x.reshape(n, num_groups, c // num_groups, h, w)
            mean = g.mean(axis=(2, 3, 4), keepdims=True)
            var = g.var(axis=(2, 3, 4), keepdims=True)
            y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
            return gamma[None, :, None, None] * y + beta[None, :, None, None]
        """,
    "merge_stats": """
        def merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
            n = count_a + count_b
            delta = mean_b - mean_a
            return n, mean_a + delta * count_b / n, m2_a + m2_b + delta**2 * count_a * count_b / n
        """,
    "fold_bn": """
        def fold_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
            s = gamma / np.sqrt(running_var + eps)
            b = 0 if conv_b is None else conv_b
            return conv_w * s[:, None, None, None], s * (b - running_mean) + beta
        """,
}
MERGE_NO_DELTA = """
    def merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n = count_a + count_b
        return n, (count_a * mean_a + count_b * mean_b) / n, m2_a + m2_b
    """


def student_edition():
    nb = jupytext.read(HW.source)
    return editions.plain_markdown(editions.student_edition(nb, HW.name))


def replace_function(nb, name: str, code: str):
    nb = copy.deepcopy(nb)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source]
    cell.source = textwrap.dedent(code).strip()
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    honest = student_edition()
    for name, code in SOLUTIONS.items():
        honest = replace_function(honest, name, code)
    answer = next(c for c in honest.cells if c.source.startswith(grade.ANSWER_PREFIX))
    answer.source = f"{grade.ANSWER_PREFIX} num_groups = C gives instance norm."
    nbformat.write(honest, subs / "honest.ipynb")

    partial = replace_function(
        student_edition(), "group_norm_forward", SOLUTIONS["group_norm_forward"]
    )
    partial = replace_function(partial, "merge_stats", MERGE_NO_DELTA)  # fold_bn: the stub
    (subs / "李雷").mkdir()
    nbformat.write(partial, subs / "李雷" / "09_homework_2.ipynb")

    out = tmp_path_factory.mktemp("grades")
    grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True)
    reports = {}
    for path in (out / "reports").glob("*.json"):
        report = json.loads(path.read_text())
        reports[report["submission"]] = report
    return out, reports


def test_the_second_homework_is_registered_with_its_three_parts():
    assert [(p.name, p.function) for p in HW.parts] == [
        ("group_norm", "group_norm_forward"),
        ("merge_stats", "merge_stats"),
        ("fold_bn", "fold_bn"),
    ]
    assert HW.max_score == 10 and HW.source.is_file()
    for part in HW.parts:
        keys = {m.key for m in part.check.mistakes}
        assert keys <= set(part.deductions), keys - set(part.deductions)  # each has a price
        assert registry.DTYPE in part.deductions and registry.IN_PLACE in part.deductions


def test_honest_work_scores_full_marks(graded):
    _, reports = graded
    report = reports["honest.ipynb"]
    assert report["homework"] == "09_homework_2" and report["status"] == "graded"
    assert report["score"] == report["max_score"] == 10, json.dumps(report["parts"], indent=1)
    for part in report["parts"].values():
        assert part["points"] == part["max_points"] and part["deductions"] == []
        assert part["cases_total"] >= 7  # the hidden cases, drawn for this run
    assert report["flags"] == []
    assert any("instance norm" in a.get("answer", "") for a in report["answers"])


def test_partial_work_keeps_what_is_right_and_loses_the_mistakes_points(graded):
    out, reports = graded
    report = reports["李雷/09_homework_2.ipynb"]
    parts = report["parts"]
    assert report["status"] == "graded" and report["homework"] == "09_homework_2"
    assert parts["group_norm"]["points"] == 4
    merge = parts["merge_stats"]
    assert [d["mistake"] for d in merge["diagnoses"]] == ["merge_no_delta_term"]
    assert merge["points"] == 3 - HW.parts[1].deductions["merge_no_delta_term"] == 1.5
    assert parts["fold_bn"]["points"] == 0
    assert "Not implemented yet" in parts["fold_bn"]["report"]
    assert report["score"] == 5.5
    feedback = next((out / "feedback").glob("*.md")) and [
        p.read_text() for p in (out / "feedback").glob("*.md") if "李雷" in p.name
    ]
    assert feedback and "the spread between the shards' means" in feedback[0]
    with open(out / "summary.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert float(rows["李雷/09_homework_2.ipynb"]["score"]) == 5.5
    assert float(rows["honest.ipynb"]["score"]) == 10

"""The downloadable notebooks: they run anywhere, and read like the page.

Each chapter page offers its executed notebook for download (``_sources/chapters/*.ipynb``,
rewritten by ``_ext/downloads.py``). Checked here, on the built site:

- **For real, in a fresh environment**: a new venv with Jupyter's kernel and nbclient only
  (no clone on its path, no bnlib, no torch), where chapters 1, 6, 7 and 8 run top to bottom
  from an empty folder; their set-up cell installs the book's two wheels from inside the
  notebook, PyTorch's pinned CPU build and what else the chapter imports (from the package
  index pip is configured with; a local copy of PyTorch's CPU wheel in pip's find-links
  stands in for PyTorch's CPU index, which this machine cannot reach). And when nothing can
  be installed, the set-up cell stops with one message that says what to do.
- **Plain Markdown**: no MyST role, directive or target is left in any download, every value
  glued on the page appears in its text, no link leads to a ``.md`` source, the static
  explorers (cells tagged ``page-only``) are gone with their widgets.
- **The launch buttons**: Colab and Binder open the notebooks branch, and until the
  repository is published the launch menu says so and offers the download.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.site.pages import ROOT, SITE, toc_chapters, unavailable

#: The chapters run for real (each takes a minute or two).
RUN_CHAPTERS = [
    "chapters/01_worked_example",
    "chapters/06_training",
    "chapters/07_after_training",  # fetches torchvision's wheel on first use
    "chapters/08_at_scale",
]
#: MyST markup that Jupyter would show raw: roles, directives, targets.
LEFTOVER = re.compile(r"\{[a-z][\w:+-]*\}`|^(`{3,}|:{3,})\{|^\([^()\s]+\)=\s*$", re.MULTILINE)

pytestmark = pytest.mark.xdist_group("downloads")


def download(chapter: str) -> dict:
    path = SITE / "_sources" / f"{chapter}.ipynb"
    if not path.exists():
        unavailable(f"no download {path}: run `make book` first")
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.split("==")[0]: line.strip() for line in lines if "==" in line}


# ----------------------------------------------------------------- the fresh environment


def local_torch_index(tmp: Path) -> dict[str, str]:
    """Where pip's configured find-links hold torch's pinned CPU wheel (this machine's
    mirror), point the set-up cell's torch index at an empty local one, so that pip takes
    the wheel from there instead of waiting on PyTorch's index, out of reach here."""
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    version = pins()["torch"].split("==")[1]
    for folders in re.findall(r"find-links='([^']*)'", config):
        for folder in folders.split():
            if list(Path(folder.removeprefix("file://")).glob(f"torch-{version}+cpu-*.whl")):
                (tmp / "empty-index").mkdir(exist_ok=True)
                return {"BNBOOK_TORCH_INDEX": (tmp / "empty-index").as_uri()}
    return {}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A new venv with only what runs a notebook: ipykernel and nbclient, pinned."""
    download(RUN_CHAPTERS[0])  # skips (fails under CI) without a built book
    tmp = tmp_path_factory.mktemp("fresh")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    want = [pins()[name] for name in ("nbclient", "nbformat")] + ["ipykernel==7.4.0"]
    run = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *want],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        unavailable(f"cannot install Jupyter's kernel in a fresh venv: {run.stderr[-500:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(local_torch_index(tmp), JUPYTER_DATA_DIR=str(tmp / "jupyter"))
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {"python": python, "venv": venv, "env": env, "tmp": tmp}


RUNNER = """
import json, sys
import nbclient, nbformat
path, timeout = sys.argv[1], int(sys.argv[2])
notebook = nbformat.read(path, as_version=4)
client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3")
error = None
try:
    client.execute()
except nbclient.exceptions.CellExecutionError as exc:
    error = {"ename": exc.ename, "evalue": exc.evalue, "traceback": str(exc)[-3000:]}
finally:
    nbformat.write(notebook, path)
print(json.dumps({"error": error}))
"""

#: Appended to the notebook: where everything came from.
WHERE = """\
import json, sys
import bnlib, bnbook, torch
print(json.dumps({"executable": sys.executable, "path": sys.path, "bnlib": bnlib.__file__,
                  "bnbook": bnbook.__file__, "torch": torch.__version__}))
"""


def run_notebook(fresh, notebook: dict, name: str, env: dict | None = None, timeout=600):
    folder = fresh["tmp"] / name
    folder.mkdir()
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    run = subprocess.run(
        [str(fresh["python"]), "-c", RUNNER, str(path), str(timeout)],
        cwd=folder,
        env=env or fresh["env"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return json.loads(path.read_text(encoding="utf-8")), result["error"]


def text_of(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_setup_stops_with_one_message_when_nothing_can_be_installed(fresh):
    """No index, no find-links: the set-up cell raises one message that says what to do,
    and no later cell runs. (Runs first, in the still empty venv.)"""
    notebook = download(RUN_CHAPTERS[0])
    notebook["cells"] = notebook["cells"][:4]
    for cell in notebook["cells"][2:]:  # as saved by the build; a cell that runs gets them anew
        if cell["cell_type"] == "code":
            cell["execution_count"], cell["outputs"] = None, []
    env = {**fresh["env"], "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    env["BNBOOK_TORCH_INDEX"] = (fresh["tmp"] / "no-index").as_uri()
    executed, error = run_notebook(fresh, notebook, "offline", env=env, timeout=300)
    assert error is not None, "the set-up cell carried on without torch"
    assert error["ename"] == "SetupError"
    assert "could not install PyTorch (torch==" in error["evalue"]
    assert "What to do" in error["evalue"] and "run this cell again" in error["evalue"]
    setup = executed["cells"][1]
    shown = "".join("".join(o.get("traceback", [])) for o in setup["outputs"])
    assert "Traceback" not in shown and shown.startswith("Set-up stopped: could not install")
    later = [c for c in executed["cells"][2:] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") is None for c in later), "a later cell ran"


@pytest.mark.parametrize("chapter", RUN_CHAPTERS)
def test_downloaded_chapter_runs_top_to_bottom_in_a_fresh_environment(fresh, chapter):
    notebook = download(chapter)
    notebook["cells"].append(
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "where",
            "metadata": {},
            "outputs": [],
            "source": WHERE,
        }
    )
    executed, error = run_notebook(fresh, notebook, Path(chapter).name)
    assert error is None, f"{chapter}: {error['ename']}: {error['traceback']}"
    assert "Set-up done: bnlib" in text_of(executed["cells"][1])
    where = json.loads(text_of(executed["cells"][-1]).strip().splitlines()[-1])
    venv = str(fresh["venv"])
    assert where["executable"].startswith(venv), where["executable"]
    assert where["bnlib"].startswith(venv) and where["bnbook"].startswith(venv), where
    assert not any(str(ROOT) in entry for entry in where["path"] if entry), (
        "the clone is on the path"
    )
    assert where["torch"].split("+")[0] == pins()["torch"].split("==")[1], where["torch"]
    assert where["torch"].endswith("+cpu") or sys.platform == "darwin", where["torch"]


# -------------------------------------------------------------------- what the files say


@pytest.mark.parametrize("chapter", toc_chapters())
def test_download_is_plain_markdown_with_the_values_of_the_page(site, chapter):
    notebook = download(chapter)
    markdown = "\n".join(source(c) for c in notebook["cells"] if c["cell_type"] == "markdown")
    leftovers = [m.group(0) for m in LEFTOVER.finditer(markdown)]
    assert leftovers == [], f"{chapter}: MyST markup left in the download: {leftovers[:5]}"
    links = re.findall(r"\]\(([^)\s]+)\)", markdown)
    assert not [u for u in links if re.search(r"\.md(#|$)", u)], f"{chapter}: links to .md"
    baseurl = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["baseurl"]
    relative = [u for u in links if not re.match(r"^(https?:|attachment:|#|mailto:)", u)]
    assert relative == [], f"{chapter}: relative links lead nowhere in a download: {relative}"
    page = (site / f"{chapter}.html").read_text(encoding="utf-8")
    glued = [
        html.unescape(t) for t in re.findall(r'<span class="pasted-text">([^<]*)</span>', page)
    ]
    plain = re.sub(r"\\([\\`*_\[\]<>|])", r"\1", markdown)  # Markdown's escapes undone
    missing = sorted({value for value in glued if value not in plain})
    assert missing == [], f"{chapter}: glued values of the page missing: {missing[:10]}"
    for url in links:  # cross-references point at the site as configured
        if url.startswith("http") and "/chapters/" in url and "bnbook" in url:
            assert url.startswith(baseurl), url
    tags = [t for c in notebook["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert "page-only" not in tags, f"{chapter}: a static explorer is left in the download"


@pytest.mark.parametrize("chapter", toc_chapters())
def test_download_carries_the_wheels_and_pins(site, chapter):
    notebook = download(chapter)
    note, setup = notebook["cells"][:2]
    assert note["cell_type"] == "markdown" and "Set-up" in source(note)
    code = source(setup)
    assert setup["cell_type"] == "code" and setup["metadata"]["jupyter"]["source_hidden"]
    wheels = {p.name: p for p in (ROOT / "_build" / "wheels").glob("*.whl")}
    assert "bnbook_bnlib-0.2.0-py3-none-any.whl" in wheels
    namespace: dict = {}
    for line in code.splitlines():  # the data lines of the cell, without running it
        if re.match(r"^(TORCH|REQUIREMENTS|PACKAGES|WHEELS) = ", line):
            exec(line, namespace)
    import base64

    for name, data in namespace["WHEELS"].items():
        assert base64.b64decode(data) == wheels[name].read_bytes(), name
    modules = set(
        re.findall(
            r"^\s*(?:import|from)\s+(\w+)",
            "\n".join(source(c) for c in notebook["cells"][2:] if c["cell_type"] == "code"),
            re.MULTILINE,
        )
    )
    if modules & {"bnbook", "torch"}:
        assert namespace["TORCH"] == pins()["torch"]
    if "bnbook" in modules:
        assert set(namespace["WHEELS"]) == set(wheels)
    for requirement in namespace["REQUIREMENTS"].values():  # pinned as the book is built
        assert requirement in pins().values(), requirement
    if "myst_nb" in modules:
        assert namespace["REQUIREMENTS"]["myst_nb"] == pins()["myst-nb"]
    widgets = notebook["metadata"].get("widgets", {})
    state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    shown = json.dumps([c.get("outputs", []) for c in notebook["cells"]])
    for model in state:  # no widget state of dropped cells is left behind
        assert model in shown or model in json.dumps([v for k, v in state.items() if k != model]), (
            model
        )


@pytest.mark.parametrize(
    "missing", [(), ("torch",), ("myst_nb",), ("bnlib-dist",), ("torch", "sklearn")]
)
def test_setup_cell_installs_only_what_is_missing(site, monkeypatch, missing):
    """The set-up cell's pip calls, in an environment missing some modules (faked)."""
    import importlib.metadata
    import importlib.util
    import subprocess as sp

    notebook = download("chapters/06_training")
    code = source(notebook["cells"][1])
    real_find_spec, real_version = importlib.util.find_spec, importlib.metadata.version
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name in missing else real_find_spec(name, *a, **k),
    )

    def version(name):
        if name == "bnbook-bnlib" and "bnlib-dist" in missing:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return sp.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sp, "run", fake_run)
    namespace = {"__name__": "setup"}
    if "bnlib-dist" in missing:  # bnlib importable, but not ours: PyPI's bnlib
        with pytest.raises(Exception, match="another package named bnlib"):
            exec(compile(code, "setup-cell", "exec"), namespace)
        return
    exec(compile(code, "setup-cell", "exec"), namespace)
    installs = [c[c.index("install") + 1 :] for c in calls]
    words = [w for call in installs for w in call]
    torch_pin = pins()["torch"]
    assert (torch_pin in words) == ("torch" in missing)
    if "torch" in missing:  # from the CPU index, on its own
        call = next(c for c in installs if torch_pin in c)
        assert (
            call[call.index("--index-url") + 1].endswith("/whl/cpu")
            or "BNBOOK_TORCH_INDEX" in os.environ
        )
    assert (pins()["myst-nb"] in words) == ("myst_nb" in missing)
    assert (pins()["scikit-learn"] in words) == ("sklearn" in missing)
    assert not any(w == "torch" or w.startswith("torch>") for w in words), "an unpinned torch"


@pytest.mark.parametrize("chapter", toc_chapters())
def test_launch_buttons_open_the_published_notebooks(site, chapter):
    page = (site / f"{chapter}.html").read_text(encoding="utf-8")
    assert f"_sources/{chapter}.ipynb" in page  # the download button
    colab = re.search(r'href="(https://colab\.research\.google\.com/[^"]+)"', page)
    assert colab and colab.group(1).endswith(f"/blob/notebooks/{chapter}.ipynb")
    assert re.search(
        rf'href="https://mybinder\.org/v2/gh/[^"]+/notebooks\?[^"]+{chapter}\.ipynb"', page
    )
    published = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    if not published.get("bnbook_repository_published"):  # the launch menu says so
        assert "work once the book&#39;s repository is published" in page or (
            "work once the book's repository is published" in page
        )


class FakeBook:
    """What a page knows, for the converter's unit tests."""

    def glued(self, key):
        return {
            "m": {"text/plain": "8"},
            "v": {"text/plain": "0.87654"},
            "fig": {"text/plain": "<Figure>", "image/png": "iVBORw0KGgo="},
        }[key]

    def doc(self, target):
        return "Running statistics", f"https://site/chapters/{target}.html"

    def ref(self, label):
        return "A section", f"https://site/p.html#{label}"

    def number(self, label):
        return {"ex-1": "Exercise 4.1", "fig-a": "Fig. 1.2"}[label], f"https://site/p.html#{label}"

    def link(self, target):
        return "https://site/chapters/" + target.replace(".md", ".html")

    def include(self, argument, options):
        return f"def {options['pyobject']}():\n    pass\n"


def converter():
    sys.path.insert(0, str(ROOT / "_ext"))
    import myst_markdown

    return myst_markdown


def test_myst_becomes_plain_markdown():
    myst = converter()
    text = """(target)=
## Title

$m =$ {glue:text}`m` values, mean {glue:text}`v:.2f`; see {numref}`fig-a`, {doc}`03_x`
and [chapter 1](01_y.md#sec), [a section](#sec-z); `{glue:text}` in code stays.

```{exercise}
:label: ex-1

Do it.
```

````{solution} ex-1
:class: dropdown

```python
x = 1
```
````

```{literalinclude} ../bnlib/functional.py
:pyobject: f
:language: python
```

:::{dropdown} More
Hidden.
:::

```{solution-end}
```"""
    out = myst.to_markdown(text, FakeBook())
    assert "(target)=" not in out.text and "## Title" in out.text
    assert "$m =$ 8 values, mean 0.88" in out.text
    assert "[Fig. 1.2](https://site/p.html#fig-a)" in out.text
    assert "[Running statistics](https://site/chapters/03_x.html)" in out.text
    assert "[chapter 1](https://site/chapters/01_y.html#sec)" in out.text
    assert "[a section](https://site/p.html#sec-z)" in out.text  # a label, on the site
    assert "`{glue:text}` in code stays" in out.text
    assert "**Exercise 4.1**\n\nDo it." in out.text
    assert "<summary>Solution to Exercise 4.1</summary>\n\n```python\nx = 1\n```" in out.text
    assert "```python\ndef f():\n    pass\n```" in out.text
    assert "<details>\n<summary>More</summary>\n\nHidden.\n\n</details>" in out.text
    assert not LEFTOVER.search(out.text.replace("`{glue:text}` in code", "")), out.text
    figure = myst.to_markdown("```{glue:figure} fig\n:alt: A plot\n\nIts caption.\n```", FakeBook())
    (name,) = figure.attachments
    assert figure.text.startswith(f"![A plot](attachment:{name})")
    assert figure.attachments[name] == {"image/png": "iVBORw0KGgo="}
    with pytest.raises(myst.UnknownMarkup, match="tabularcolumns"):
        myst.to_markdown("```{tabularcolumns} x\n```", FakeBook())

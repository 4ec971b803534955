"""The built wheel's core runs with NumPy alone (issue 10: ``pip install bnlib`` needs NumPy).

The wheel is built offline from a copy of the package (``pip wheel --no-deps
--no-build-isolation``), then a fresh interpreter started with ``-I -S`` (no site-packages,
no PYTHONPATH) gets a ``sys.path`` of the standard library, the wheel file itself and a
folder holding only NumPy, plus an import hook that raises on matplotlib, ipywidgets,
IPython and torch. In it, ``import bnlib``, ``bnlib.batch_norm``, ``BatchNorm2d`` forward
and backward and ``bnlib.check`` must work.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(np.__file__).resolve().parents[1]  # the venv's site-packages
FORBIDDEN = ("matplotlib", "ipywidgets", "IPython", "torch")

CORE_SCRIPT = textwrap.dedent(
    """
    import sys

    FORBIDDEN = {forbidden!r}

    class Forbid:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"the core must not import {{name}}")
            return None

    sys.meta_path.insert(0, Forbid())
    sys.path[:0] = [{wheel!r}, *{path!r}]

    import numpy as np

    import bnlib
    from bnlib import check
    {extra}

    assert bnlib.__file__.startswith({wheel!r}), bnlib.__file__
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = bnlib.batch_norm(x, rm, rv, training=True)
    assert np.allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(rm, 0.1 * x.mean(axis=(0, 2, 3)), atol=1e-6)
    dx, dw, db = bnlib.batch_norm_backward(dy, x)
    bn = bnlib.BatchNorm2d(3)
    assert np.allclose(bn(x), y, atol=1e-6)
    assert np.allclose(bn.backward(dy), dx, atol=1e-6)
    bn.eval()
    bn(x)
    bn.backward(dy)

    def student_forward(x, gamma, beta, eps):
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        g, b = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
        return (x - mean) / np.sqrt(var + eps) * g + b

    assert check.forward(student_forward).passed
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    assert not loaded, loaded
    print("core ok")
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """bnlib's wheel, built offline from a copy of the package (the worktree stays clean)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "bnlib", src / "bnlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("bnbook_bnlib-*.whl")
    return whl


def metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return z.read(name).decode().splitlines()


def test_wheel_requires_numpy_only(wheel):
    lines = metadata(wheel)
    requires = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist")]
    core = [r for r in requires if "extra ==" not in r]
    assert core == ["numpy>=2"]
    assert all(r.startswith("torch") for r in requires if "extra ==" in r), requires


def test_wheel_is_the_library_under_its_own_name(wheel):
    """PyPI's "bnlib" is another project: the distribution is bnbook-bnlib, the import
    package bnlib, and the wheel holds the library and nothing of the book or grader."""
    assert "Name: bnbook-bnlib" in metadata(wheel)
    with zipfile.ZipFile(wheel) as z:
        tops = {n.split("/")[0] for n in z.namelist()}
    assert tops == {"bnlib", *(t for t in tops if t.endswith(".dist-info"))}, tops
    assert "bnlib/check/engine.py" in zipfile.ZipFile(wheel).namelist()


def test_wheel_metadata_is_ready_to_publish(wheel):
    """twine's own check: the long description renders, the metadata is complete."""
    lines = metadata(wheel)
    for field in ("Summary:", "License-Expression: MIT", "Project-URL: Source", "Classifier:"):
        assert any(line.startswith(field) for line in lines), field
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture
def numpy_dir(tmp_path) -> Path:
    """A folder that holds NumPy and nothing else (symbolic links to the venv's copy)."""
    folder = tmp_path / "numpy-only"
    folder.mkdir()
    for name in ("numpy", "numpy.libs"):  # numpy.libs: the OpenBLAS the wheel bundles
        if (SITE / name).exists():
            os.symlink(SITE / name, folder / name)
    return folder


def run_core(wheel: Path, *path: Path, extra: str = "") -> subprocess.CompletedProcess:
    script = CORE_SCRIPT.format(
        forbidden=FORBIDDEN, wheel=str(wheel), path=[str(p) for p in path], extra=extra
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "OPENBLAS_NUM_THREADS": "1"},
    )


def test_core_runs_with_numpy_alone(wheel, numpy_dir):
    result = run_core(wheel, numpy_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core ok"


def test_the_hook_catches_a_forbidden_import(wheel):
    """With the whole venv reachable, importing torch still fails: the hook does the work."""
    result = run_core(wheel, SITE, extra="import torch")
    assert result.returncode != 0
    assert "the core must not import torch" in result.stderr

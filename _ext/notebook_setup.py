# @title Set-up: installs what this chapter needs (run this cell first)
"""The first code cell of every downloadable notebook (``_ext/downloads.py`` puts it there).

It makes the notebook run top to bottom anywhere that has Jupyter and can reach the package
index: a fresh Jupyter, Colab, Binder. Nothing is fetched from the book's repository or
site: the book's two packages travel inside the notebook, as the wheels ``make book`` built
(``WHEELS``, base64). What the chapter imports and the environment lacks is installed:

- the two wheels, ``bnbook-bnlib`` (import ``bnlib``) and ``bnbook``, unless these very
  versions are installed already (a clone after ``make setup``);
- PyTorch, pinned (``TORCH``), the CPU build, from PyTorch's CPU index (``TORCH_INDEX``;
  the environment variable ``BNBOOK_TORCH_INDEX`` names a mirror of it), only where there is
  no torch at all: a torch already there (Colab's) is kept, and never replaced from PyPI;
- every other package the chapter imports (``REQUIREMENTS``), at the version the book was
  built with, only when it is missing.

When something cannot be installed, or a package this kernel has already imported was
replaced, the cell stops with one message that says what to do, so later cells never run
half set up. ``WHEELS``, ``REQUIREMENTS``, ``TORCH`` and the versions are filled in per
notebook when the book is built; this file is their template (and linted as Python).
"""

import base64
import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile

TORCH = "torch==2.13.0"
TORCH_INDEX = os.environ.get("BNBOOK_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
#: Import name → requirement, for what the chapter imports besides bnlib, bnbook and torch.
REQUIREMENTS = {"numpy": "numpy==2.4.6"}
#: Distribution name → version of the wheels below.
PACKAGES = {"bnbook-bnlib": "0.2.0", "bnbook": "0.2.0"}


class SetupError(Exception):
    """Shown as its message alone (IPython's ``_render_traceback_``), and stops Run All."""

    def _render_traceback_(self):
        return ["Set-up stopped: " + str(self)]


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip(*args):
    """``pip install ARGS`` in this kernel's Python; its last lines of output when it fails."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run = subprocess.run([*command, *args], capture_output=True, text=True)
    if run.returncode == 0:
        return ""
    lines = (run.stdout + run.stderr).strip().splitlines()
    return "\n".join(lines[-6:]) or f"pip exited with status {run.returncode}"


def _fail(what, output, yourself):
    raise SetupError(
        f"could not install {what}.\n{output}\n\nWhat to do: check that this machine can "
        "reach the package index (on Binder or Colab, that the session is connected), then "
        f"run this cell again. Or install it yourself,\n    {yourself}\nand run this cell "
        "again."
    )


def set_up(torch, torch_index, requirements, packages, wheels):
    modules = {"bnbook-bnlib": "bnlib", "bnbook": "bnbook", "torch": "torch"}
    modules.update({req.split("==")[0]: module for module, req in requirements.items()})
    before = {name: _version(name) for name in modules}
    if _version("bnbook-bnlib") is None and importlib.util.find_spec("bnlib") is not None:
        raise SetupError(
            "another package named bnlib is installed (PyPI's bnlib, a different project). "
            "Remove it (pip uninstall bnlib), restart the kernel, and run this cell again."
        )
    if torch and importlib.util.find_spec("torch") is None:  # the CPU build, pinned
        output = _pip(torch, "--index-url", torch_index)
        if output:
            _fail(
                f"PyTorch ({torch}, CPU build)",
                output,
                f"pip install {torch} --index-url {torch_index}",
            )
    missing = [
        req for module, req in requirements.items() if importlib.util.find_spec(module) is None
    ]
    stale = [name for name, version in packages.items() if _version(name) != version]
    if stale or missing:
        with tempfile.TemporaryDirectory(prefix="bnbook-") as folder:
            files = []
            for name, data in wheels.items():
                files.append(os.path.join(folder, name))
                with open(files[-1], "wb") as wheel:
                    wheel.write(base64.b64decode(data))
            constraints = os.path.join(folder, "constraints.txt")
            with open(constraints, "w") as pins:  # the torch there is kept, never replaced
                pins.write(f"torch=={_version('torch')}\n" if _version("torch") else "")
            output = _pip(*files, *missing, "--constraint", constraints)
        if output:
            what = " and ".join(["the book's packages bnlib and bnbook", *missing])
            _fail(what, output, "pip install " + " ".join(["<the two wheels>", *missing]))
    importlib.invalidate_caches()
    changed = [name for name, version in before.items() if version and _version(name) != version]
    if any(modules[name] in sys.modules for name in changed):
        raise SetupError(
            f"installed new versions of {', '.join(changed)}, which this kernel had already "
            "imported. Restart the kernel (Jupyter: Kernel, Restart Kernel; Colab: Runtime, "
            "Restart session), then run the notebook again from the top."
        )
    try:  # Colab shows ipywidgets 8 through its own widget manager, once it is enabled
        from google.colab import output

        output.enable_custom_widget_manager()
    except ImportError:
        pass
    print("Set-up done: bnlib", _version("bnbook-bnlib"), "and bnbook", _version("bnbook"))


#: Wheel file name → its bytes, base64.
WHEELS = {}
set_up(TORCH, TORCH_INDEX, REQUIREMENTS, PACKAGES, WHEELS)

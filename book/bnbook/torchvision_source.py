"""torchvision's own ``FrozenBatchNorm2d``, run from its released source without importing
torchvision.

PyPI's torchvision wheels carry compiled operators built against one torch release, and
importing ``torchvision`` loads them. The book pins ``torch==2.13.0``; the class the
after-training chapter checks, ``torchvision.ops.misc.FrozenBatchNorm2d``, is plain Python
on top of torch. So this module reads that class's source from torchvision's own wheel
(:data:`TORCHVISION_VERSION`, the release built for torch 2.13) and runs it, compiled
operators untouched. Where torchvision imports (Colab ships it beside its torch), the
imported class is used instead: either way the code is torchvision's, not a copy.

``make setup`` downloads the wheel (``python -m bnbook.torchvision_source``) into
:data:`WHEEL_DIR`, so that the book builds offline. A downloaded chapter run elsewhere
(Jupyter, Colab) downloads it there the first time it is needed, from the package index.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path
from types import FunctionType
from typing import Any

import torch

#: The torchvision release whose source the book runs: the one built for torch 2.13.
TORCHVISION_VERSION = "0.28.0"
#: Where ``make setup`` keeps its wheel: inside the virtual environment.
WHEEL_DIR = Path(sys.prefix) / "share" / "bnbook" / "wheels"


def download(dest: Path = WHEEL_DIR) -> Path:
    """Download torchvision's wheel (no dependencies, nothing installed) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    command += [f"torchvision=={TORCHVISION_VERSION}", "--dest", str(dest)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(
            f"could not download torchvision {TORCHVISION_VERSION}'s wheel into {dest} "
            f"(pip said: {run.stderr.strip()[-300:]}). Connect to the package index and run "
            "the cell again, or run `python -m bnbook.torchvision_source` where you can."
        )
    return wheel_path(dest, fetch=False)


def wheel_path(folder: Path = WHEEL_DIR, fetch: bool = True) -> Path:
    """The downloaded wheel of :data:`TORCHVISION_VERSION` in ``folder``; downloaded
    there first if it is missing and ``fetch`` is true."""
    found = sorted(folder.glob(f"torchvision-{TORCHVISION_VERSION}-*.whl"))
    if found:
        return found[-1]
    if fetch:
        return download(folder)
    raise FileNotFoundError(
        f"torchvision {TORCHVISION_VERSION}'s wheel is not in {folder}: run `make setup` "
        "(or `python -m bnbook.torchvision_source`), which downloads it"
    )


def source(member: str, wheel: Path | None = None) -> str:
    """The text of one file of the wheel, e.g. ``"torchvision/ops/misc.py"``."""
    with zipfile.ZipFile(wheel or wheel_path()) as archive:
        return archive.read(member).decode("utf-8")


def definition(module_source: str, name: str) -> str:
    """The source of the top-level class or function ``name`` in ``module_source``."""
    for node in ast.parse(module_source).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return ast.get_source_segment(module_source, node)
    raise LookupError(f"no top-level definition of {name} in the source")


def frozen_batch_norm_2d() -> type[torch.nn.Module]:
    """torchvision's ``FrozenBatchNorm2d``: imported where torchvision imports, otherwise
    its class definition (and the ``_log_api_usage_once`` it calls) run from the wheel's
    ``torchvision/ops/misc.py`` and ``torchvision/utils.py``."""
    try:
        from torchvision.ops.misc import FrozenBatchNorm2d
    except Exception:  # noqa: BLE001 (no torchvision, or one that does not load)
        pass
    else:
        return FrozenBatchNorm2d
    wheel = wheel_path()
    namespace: dict[str, Any] = {"torch": torch, "Tensor": torch.Tensor}
    namespace.update({"Any": Any, "FunctionType": FunctionType})
    for member, name in (
        ("torchvision/utils.py", "_log_api_usage_once"),
        ("torchvision/ops/misc.py", "FrozenBatchNorm2d"),
    ):
        code = definition(source(member, wheel), name)
        exec(compile(code, f"{wheel.name}/{member}", "exec"), namespace)  # noqa: S102
    cls = namespace["FrozenBatchNorm2d"]
    cls.__module__ = "torchvision.ops.misc"
    return cls


if __name__ == "__main__":
    print(download())

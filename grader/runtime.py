"""A Python the sandbox's uid can run, in the mode without bubblewrap: this grader's own
interpreter and packages where every user can read them, else a hard-linked mirror of them
(an interpreter under /root, as pyenv installs it, is out of other users' reach)."""

from __future__ import annotations

import os
import shutil
import site
import sys
from dataclasses import dataclass
from pathlib import Path


def usable_by_others(path: str) -> bool:
    """Every folder above ``path`` can be crossed, and ``path`` read, by any user."""
    real = Path(os.path.realpath(path))
    try:
        need = 0o005 if real.is_dir() else 0o004
        return bool(real.stat().st_mode & need == need) and all(
            p.stat().st_mode & 0o001 for p in real.parents
        )
    except OSError:
        return False


def mirror(source: Path, dest: Path, skip: set[str] = frozenset()) -> None:
    """``dest``: ``source``'s tree, its files hard-linked (copied where a link cannot be
    made, or the file is not readable by all), its folders made world-readable."""
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in skip]
        target = dest / os.path.relpath(folder, source)
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.chmod(0o755)
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            src, dst = Path(folder) / name, target / name
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
            elif src.stat().st_mode & 0o004:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
                dst.chmod(0o644 | (0o111 if os.access(src, os.X_OK) else 0))


@dataclass
class Runtime:
    """The interpreter and package folders the sandbox's uid runs (process mode)."""

    python: str
    site: list[str]
    libdir: str
    mirror: Path | None = None  # a hard-linked copy made for this run, when needed


def runtime(scratch: Path) -> Runtime:
    """This grader's Python for another user: as it is where every user can read it, else a
    hard-linked mirror in ``scratch`` (an interpreter under /root, as pyenv installs it)."""
    python = os.path.realpath(sys.executable)
    base = Path(os.path.realpath(sys.base_prefix))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib, libdir = base / "lib" / version, base / "lib"
    sites = [d for d in site.getsitepackages() if os.path.isdir(d)]
    needed = [python, str(stdlib), *sites]
    if all(usable_by_others(p) for p in needed):
        return Runtime(python, sites, str(libdir))
    scratch.mkdir(mode=0o755)
    (scratch / "bin").mkdir(mode=0o755)
    shutil.copy2(python, scratch / "bin" / version)
    (scratch / "bin" / version).chmod(0o755)
    (scratch / "lib").mkdir(mode=0o755)
    for library in libdir.glob("libpython*"):
        if library.is_file():
            shutil.copy2(library, scratch / "lib" / library.name)
            (scratch / "lib" / library.name).chmod(0o755)
    mirror(stdlib, scratch / "lib" / version, skip={"site-packages", "test"})
    mirrored = []
    for k, folder in enumerate(sites):
        if usable_by_others(folder):
            mirrored.append(folder)
        else:
            mirror(Path(folder), scratch / f"site-{k}")
            mirrored.append(str(scratch / f"site-{k}"))
    return Runtime(str(scratch / "bin" / version), mirrored, str(scratch / "lib"), scratch)

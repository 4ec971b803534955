"""Execute one chapter as the book build does (jupytext, then nbclient in chapters/) and
print how long it took: the quick check for an author ("each chapter under 90 s").

    .venv/bin/python scripts/run_chapter.py chapters/06_training.md [--out executed.ipynb]
"""

import argparse
import pathlib
import sys
import time

import jupytext
import nbformat
from nbclient import NotebookClient


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, help="write the executed notebook here")
    args = parser.parse_args()
    if not args.chapter.is_file():
        sys.exit(f"{args.chapter} does not exist: give a chapter's .md file")
    notebook = jupytext.read(args.chapter)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.chapter.resolve().parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if args.out:
        nbformat.write(notebook, args.out)
    print(f"{args.chapter}: executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

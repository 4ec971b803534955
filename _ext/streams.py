"""A cell's printed output shown as the kernel wrote it, the same in every build.

``nb_merge_streams`` merges a cell's stream outputs into one block, but myst-nb 1.x does it
chunk by chunk (``myst_nb.core.utils.coalesce_streams``): it strips each chunk's trailing
whitespace and appends one newline. Where the kernel happened to flush between a
``print``'s text and its ``"\\n"``, the next chunk starts with that newline and the page
shows a blank line that another build of the same source does not (seen on chapter 3).

nbclient's own ``coalesce_streams`` joins the chunks as written; this does the same first,
then hands the joined outputs to myst-nb's function for the rest of what it does (one
trailing newline, ``\\r`` and ``\\b``, stdout before stderr).
"""

from __future__ import annotations

import copy

from myst_nb.core import render
from myst_nb.core.utils import coalesce_streams as myst_coalesce_streams
from sphinx.application import Sphinx


def join_streams(outputs: list) -> list:
    """``outputs`` with each stream's chunks joined, text unchanged, where it first appeared."""
    joined, streams = [], {}
    for output in outputs:
        if output.get("output_type") != "stream":
            joined.append(output)
        elif output["name"] in streams:
            streams[output["name"]]["text"] += output["text"]
        else:
            streams[output["name"]] = copy.copy(output)  # the notebook's own node is kept
            joined.append(streams[output["name"]])
    return joined


def coalesce_streams(outputs: list) -> list:
    """myst-nb's merge, given the chunks already joined (so none is stripped on its own)."""
    return myst_coalesce_streams(join_streams(outputs))


def setup(app: Sphinx) -> dict:
    render.coalesce_streams = coalesce_streams  # the name myst-nb's renderer calls
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

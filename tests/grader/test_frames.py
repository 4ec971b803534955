"""What comes back from the sandbox is read as data only: arrays of numbers, sizes checked
against their headers before loading, frames that stop at the first malformed one."""

from __future__ import annotations

import io

import numpy as np
import pytest

from grader import frames, homeworks
from grader.runner import MAGIC

HW = homeworks.HOMEWORKS["05_homework"]


def test_what_comes_back_is_parsed_as_data_only():
    good = io.BytesIO()
    np.save(good, np.arange(3.0))
    blob = good.getvalue()
    assert np.array_equal(frames.load_array(blob, 1 << 20), np.arange(3.0))
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for bad in (objects.getvalue(), blob[:-8], blob.replace(b"(3,)", b"(9999999999,)")):
        with pytest.raises(ValueError):
            frames.load_array(bad, 1 << 20)
    frame = MAGIC + b"\x05\x00\x00\x00\x00\x00\x00\x00" + b'{"a":'
    assert list(frames.frames(frame)) == []  # truncated: nothing
    assert list(frames.frames(b"garbage" * 100)) == []
    assert frames.text("a\x1b[31mred\x00") == "a [31mred "


def test_an_array_header_cannot_claim_a_size_it_does_not_have():
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32, 1)}
    )
    with pytest.raises(ValueError, match="size"):
        frames.load_array(b"\x93NUMPY\x01\x00" + buffer.getvalue()[8:], 1 << 20)
    header = {"type": "trial", "part": "forward", "k": 0, "outputs": 1, "after": 0}
    back = frames.returned(header, [b"\x93NUMPY\x09junk"], HW.parts[0].check.public()[0])
    assert back.outputs is None and "not a plain array" in back.problem

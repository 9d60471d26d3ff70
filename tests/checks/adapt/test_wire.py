"""checks.adapt.wire: messages cross as frames of JSON plus raw arrays, and nothing but a well-formed frame is
accepted: every malformed one (wrong lengths, dtypes, shapes, JSON constants, trailing bytes, a frame above
the limit, a late or missing answer) is a WireError, never a guess."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checks.adapt import wire
from checks.adapt.wire import Closed, Late, Message, WireError, decode, encode

ARRAYS = st.sampled_from(["float64", "float32", "int64", "bool"]).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), ARRAYS, max_size=4), st.dictionaries(st.text(), st.integers()))
def test_a_message_crosses_unchanged(arrays, body):
    message = Message("forward", body, arrays)
    got = decode(encode(message)[8:])
    assert (got.verb, got.body) == ("forward", body)
    assert list(got.arrays) == list(arrays)
    for name, value in arrays.items():
        assert got.arrays[name].dtype == value.dtype and got.arrays[name].shape == value.shape
        assert np.array_equal(got.arrays[name], value, equal_nan=True)
        assert got.arrays[name].flags.writeable  # a copy, not a view of the frame


def test_an_array_the_wire_does_not_carry_is_refused_when_sent():
    with pytest.raises(ValueError, match="object"):
        encode(Message("x", {}, {"a": np.array([object()])}))


def _frame(header: object, tail: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(4, "big") + text + tail


BAD = {
    "not json": (3).to_bytes(4, "big") + b"{x]",
    "json constant": (len(b'{"verb":"x","body":{"a":NaN},"arrays":[]}')).to_bytes(4, "big")
    + b'{"verb":"x","body":{"a":NaN},"arrays":[]}',
    "missing key": _frame({"verb": "x", "body": {}}),
    "extra key": _frame({"verb": "x", "body": {}, "arrays": [], "more": 1}),
    "verb not text": _frame({"verb": 3, "body": {}, "arrays": []}),
    "dtype not carried": _frame({"verb": "x", "body": {}, "arrays": [["a", "object", [1]]]}, b"\0" * 8),
    "negative dimension": _frame({"verb": "x", "body": {}, "arrays": [["a", "float64", [-1]]]}),
    "boolean dimension": _frame({"verb": "x", "body": {}, "arrays": [["a", "float64", [True]]]}, b"\0" * 8),
    "too many dimensions": _frame({"verb": "x", "body": {}, "arrays": [["a", "bool", [1] * 9]]}, b"\0"),
    "short array": _frame({"verb": "x", "body": {}, "arrays": [["a", "float64", [2]]]}, b"\0" * 8),
    "trailing bytes": _frame({"verb": "x", "body": {}, "arrays": []}, b"\0"),
    "duplicate name": _frame({"verb": "x", "body": {}, "arrays": [["a", "bool", [1]], ["a", "bool", [1]]]}, b"\0\0"),
    "header longer than frame": (100).to_bytes(4, "big") + b"{}",
    "no header": b"\0",
}


@pytest.mark.parametrize("payload", BAD.values(), ids=BAD.keys())
def test_a_malformed_frame_is_refused(payload):
    with pytest.raises(WireError):
        decode(payload)


def test_a_frame_above_the_limit_is_refused_unread():
    r, w = os.pipe()
    try:
        os.write(w, (10**9).to_bytes(8, "big"))
        with pytest.raises(WireError, match="above the limit"):
            wire.receive(r, limit=1000)
    finally:
        os.close(r)
        os.close(w)


def test_a_closed_pipe_is_closed_and_a_cut_frame_is_an_error():
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(Closed):
        wire.receive(r)
    os.close(r)
    r, w = os.pipe()
    frame = encode(Message("x", {}, {"a": np.zeros(3)}))
    os.write(w, frame[:-5])
    os.close(w)
    with pytest.raises(WireError) as info:
        wire.receive(r)
    assert not isinstance(info.value, Closed)
    os.close(r)


def test_a_frame_that_does_not_arrive_by_the_deadline_is_late():
    r, w = os.pipe()
    try:
        os.write(w, encode(Message("x"))[:5])  # a sender that stalls half-way through the length
        with pytest.raises(Late):
            wire.receive(r, deadline=time.monotonic() + 0.05)
    finally:
        os.close(r)
        os.close(w)


def test_send_and_receive_over_a_pipe():
    r, w = os.pipe()
    try:
        wire.send(w, Message("grads", {"faults": {}}, {"grad:input": np.arange(6.0).reshape(2, 3)}))
        got = wire.receive(r)
        assert got.verb == "grads" and np.array_equal(got.arrays["grad:input"], np.arange(6.0).reshape(2, 3))
    finally:
        os.close(r)
        os.close(w)

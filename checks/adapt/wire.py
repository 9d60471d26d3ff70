"""The wire between the checker and the worker that holds the user's layer: frames of JSON plus raw arrays.

A frame is ``[8-byte big-endian length N][N bytes]``; the N bytes are ``[4-byte header length H][H bytes of
UTF-8 JSON][array bytes]``. The JSON is an object ``{"verb": str, "body": {...}, "arrays": [[name, dtype,
shape], ...]}``; the array bytes follow in that order, each C-contiguous, little-endian, of exactly
``prod(shape) * itemsize`` bytes. Only the dtypes in ``DTYPES`` cross (no object arrays, no pickle), shapes
have at most ``MAX_NDIM`` non-negative dimensions, and a frame is at most ``limit`` bytes: whatever does not
parse as exactly that is a ``WireError``, never a guess.

Standard library and numpy only: both sides import it.
"""

from __future__ import annotations

import json
import math
import os
import select
import time
from dataclasses import dataclass, field

import numpy as np

DTYPES = ("float64", "float32", "int64", "int32", "bool")
MAX_NDIM = 8
MAX_HEADER = 1 << 20  # bytes of JSON in one frame
DEFAULT_LIMIT = 1 << 30  # bytes in one frame


class WireError(Exception):
    """A frame that is not what the protocol allows (or the other side is gone); ``str()`` says which."""


class Closed(WireError):
    """The other side closed the pipe: no frame at all."""


class Late(WireError):
    """No (complete) frame arrived before the deadline."""


@dataclass
class Message:
    """verb: what the message is or asks ("forward", "grads", ...); body: JSON values; arrays: name -> ndarray."""

    verb: str
    body: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def encode(message: Message) -> bytes:
    """The frame for ``message`` (ValueError for an array of a dtype the wire does not carry)."""
    specs, chunks = [], []
    for name, value in message.arrays.items():
        array = np.asarray(value, order="C")  # not ascontiguousarray: that makes a 0-d array 1-d
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype.name not in DTYPES:
            raise ValueError(f"array {name!r} has dtype {array.dtype}, which the wire does not carry")
        array = array.astype(dtype.newbyteorder("<"), copy=False)
        specs.append([name, dtype.name, list(array.shape)])
        chunks.append(array.tobytes())
    header = json.dumps(
        {"verb": message.verb, "body": message.body, "arrays": specs}, allow_nan=False, separators=(",", ":")
    ).encode()
    payload = len(header).to_bytes(4, "big") + header + b"".join(chunks)
    return len(payload).to_bytes(8, "big") + payload


def decode(payload: bytes) -> Message:
    """The message in ``payload`` (a frame without its length prefix), validated; WireError otherwise."""
    if len(payload) < 4:
        raise WireError("a frame shorter than its header length")
    size = int.from_bytes(payload[:4], "big")
    if size > MAX_HEADER or 4 + size > len(payload):
        raise WireError(f"a header of {size} bytes in a frame of {len(payload)}")
    try:
        header = json.loads(payload[4 : 4 + size].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"verb", "body", "arrays"}:
        raise WireError("the header is not {verb, body, arrays}")
    verb, body, specs = header["verb"], header["body"], header["arrays"]
    if not isinstance(verb, str) or not isinstance(body, dict) or not isinstance(specs, list):
        raise WireError("the header's verb, body or arrays has the wrong type")
    arrays, offset = {}, 4 + size
    for spec in specs:
        name, array, offset = _array(spec, payload, offset)
        if name in arrays:
            raise WireError(f"array {name!r} appears twice")
        arrays[name] = array
    if offset != len(payload):
        raise WireError(f"{len(payload) - offset} bytes after the last array")
    return Message(verb, body, arrays)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _array(spec: object, payload: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], str)):
        raise WireError(f"an array description {str(spec)[:80]} is not [name, dtype, shape]")
    name, dtype, shape = spec
    if dtype not in DTYPES:
        raise WireError(f"array {name!r} has dtype {dtype!r}, which the wire does not carry")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise WireError(f"array {name!r} has shape {str(shape)[:80]}")
    itemsize = np.dtype(dtype).itemsize
    nbytes = math.prod(shape) * itemsize
    if offset + nbytes > len(payload):
        raise WireError(f"array {name!r} needs {nbytes} bytes, {len(payload) - offset} are left")
    data = np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder("<"), count=math.prod(shape), offset=offset)
    return name, data.reshape(shape).astype(np.dtype(dtype), copy=True), offset + nbytes


def send(fd: int, message: Message) -> None:
    """Write the frame for ``message`` to ``fd`` (all of it; WireError when the other side is gone)."""
    view = memoryview(encode(message))
    try:
        while view:
            view = view[os.write(fd, view) :]
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise Closed(f"the other side is gone ({exc.strerror})") from None


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    """Exactly ``n`` bytes from ``fd`` (Closed at end of file before the first byte, WireError after it;
    Late when ``deadline``, a time.monotonic() value, passes first)."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise Late(f"no answer in time ({n - left} of {n} bytes arrived)")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            if left == n:
                raise Closed("the other side closed the pipe")
            raise WireError(f"the pipe ended after {n - left} of {n} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, limit: int = DEFAULT_LIMIT, deadline: float | None = None) -> Message:
    """The next message on ``fd``, validated (a frame above ``limit`` bytes is refused unread); Late when
    ``deadline`` (time.monotonic()) passes before it is complete."""
    size = int.from_bytes(read_exact(fd, 8, deadline), "big")
    if size > limit:
        raise WireError(f"a frame of {size} bytes, above the limit of {limit}")
    return decode(read_exact(fd, size, deadline))

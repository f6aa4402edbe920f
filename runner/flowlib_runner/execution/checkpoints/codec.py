"""How checkpointed values are encoded: pickle restricted to Python's built-in data types, compressed.

Why pickle and not JSON: a resumed run must see exactly the values it had. JSON turns tuples into
lists, integer keys into strings and refuses sets and bytes, so a resumed run would be silently
different. Why restricted: a checkpoint may come from a bucket others can write, and an ordinary
unpickler runs whatever a pickle names. Here the writer refuses every object that is not ``None``,
a bool, int, float, str, bytes, bytearray, or a list, tuple, dict, set or frozenset of them (those
are written as pickle opcodes, never by naming a class), and the reader refuses to look up any
global, so no code can run when a checkpoint is read.
"""

from __future__ import annotations

import io
import pickle
import zlib
from typing import Any

PROTOCOL = 5
COMPRESSION_LEVEL = 1
"""zlib's fastest level: checkpoints are written often and read rarely; JSON-like data still shrinks 3-10x."""


class Unserialisable(TypeError):
    """A value holds an object of a type checkpoints cannot hold."""

    def __init__(self, type_name: str) -> None:
        super().__init__(type_name)
        self.type_name = type_name


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # CPython's pickler calls this for every object but the exact built-in types named in the
        # module docstring (those it writes itself, by opcode); everything reaching here is refused.
        raise Unserialisable(f"{type(obj).__module__}.{type(obj).__qualname__}")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a checkpoint may hold built-in data only, not {module}.{name}")


def encode(value: Any) -> bytes:
    """``value`` as bytes (uncompressed); raises ``Unserialisable`` naming the first foreign type."""
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, protocol=PROTOCOL).dump(value)
    except RecursionError as error:
        raise Unserialisable("a value nested too deeply") from error
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    """The value ``encode`` made of ``data``; raises ``ValueError`` for anything else."""
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
        raise ValueError(f"not a checkpoint value: {error}") from error


def decode_sequence(data: bytes) -> list[Any]:
    """The values of ``data`` holding one or more ``encode`` results one after the other (a merged
    segment blob); raises ``ValueError`` for anything else."""
    stream = io.BytesIO(data)
    values: list[Any] = []
    try:
        while True:
            values.append(_Unpickler(stream).load())
            if stream.tell() >= len(data):
                return values
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
        raise ValueError(f"not a sequence of checkpoint values: {error}") from error


def compress(data: bytes) -> bytes:
    return zlib.compress(data, COMPRESSION_LEVEL)


_RAW_MARK = b"\x80"  # pickle's PROTO opcode, the first byte of every ``encode`` result; a zlib stream starts with 0x78


def decompress(data: bytes) -> bytes:
    """``data`` uncompressed; a blob written uncompressed (``encode`` bytes, for stores that do not
    want compression: ``store.base.compresses``) is told by its first byte and returned as it is."""
    if data[:1] == _RAW_MARK:
        return data
    try:
        return zlib.decompress(data)
    except zlib.error as error:
        raise ValueError(f"not a compressed checkpoint blob: {error}") from error


def pack(value: Any, *, compressed: bool = True) -> bytes:
    """``value`` encoded, and compressed unless told not to (for small blobs written on the spot)."""
    data = encode(value)
    return compress(data) if compressed else data


def unpack(data: bytes) -> Any:
    return decode(decompress(data))


def unpack_sequence(data: bytes) -> list[Any]:
    return decode_sequence(decompress(data))

"""Checkpoints on disk without pickle: ``save(obj, path)`` and ``load(path)``.

``obj`` is a tree of dict, list and tuple over None, bool, int, float, complex, str, NumPy
scalars and ndarrays (optimizer and scheduler state dicts, model arrays). Dict keys are
None, bool, int, float, complex, str or tuples of them. ``load`` gives it back bit for bit,
types, dtypes and key order included; arrays come back as fresh C-contiguous ndarrays.

The format, ``numpy_optim.checkpoint`` version 1, is a ``.npz`` (an uncompressed zip that
``np.load(path, allow_pickle=False)`` reads) with the members

* ``layout``: the tree as UTF-8 JSON in a 1-d uint8 array, ``{"format", "version", "tree"}``.
  Each node has one key naming its type: ``{"none": null}``, ``{"bool": true}``,
  ``{"int": hex(n)}``, ``{"float": <the 8 bytes, big-endian, in hex>}``, ``{"complex": [re, im]}``,
  ``{"str": s}``, ``{"list": [nodes]}``, ``{"tuple": [nodes]}``, ``{"dict": [[key, value], ...]}``,
  and ``{"array": record}`` / ``{"scalar": record}`` (a NumPy scalar is a 0-d array) with
  ``record = {"member": "a<i>", "dtype": dtype.str, "shape": [...], "sha256": ...}``, the hash
  of ``json.dumps([dtype, shape])`` followed by the array's bytes;
* ``layout_sha256``: the layout's sha256 (hex, a 0-d unicode array);
* ``a0``, ``a1``, ...: one C-order array each. A dtype that the ``.npy`` header cannot
  describe (``np.dtype(dt.str) != dt``: ml_dtypes' bfloat16, float8, int4) is stored as
  unsigned ints of its size, its record naming it in ``"bits_of"`` (restored by
  ``np.dtype(name)``, importing ml_dtypes if needed).

The zip's comment is the sha256 (hex) of every byte before it, so that no byte of the file
goes unchecked. ``save`` writes a temporary file beside ``path`` (``.<name>.<random>.tmp``,
mode 0600 as ``tempfile.mkstemp`` makes it), fsyncs it, renames it onto ``path`` and fsyncs
the directory: a process killed mid-save leaves the previous file whole (and perhaps a stale
temporary file). Anything it cannot store is refused before any file is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import tempfile
import types
import zipfile
from typing import IO, Any

import numpy as np

__all__ = ["load", "save"]

FORMAT = "numpy_optim.checkpoint"
VERSION = 1
_MAX_DEPTH = 100  # nesting levels: deeper trees are refused (they would exhaust Python's stack)
_DIGEST_CHARS = 64  # a sha256 in hex
_CHUNK = 1 << 24  # bytes read or hashed at once
_KEY_TYPES = (type(None), bool, int, float, complex, str, tuple)
_CAN_STORE = "dict, list, tuple, None, bool, int, float, complex, str, NumPy scalars and ndarrays"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# What a damaged file makes zipfile, numpy's header parser, json or the layout checks raise.
_DAMAGE = (
    ValueError, TypeError, KeyError, IndexError, EOFError, OSError, OverflowError, RuntimeError,
    NotImplementedError, struct.error, zipfile.BadZipFile,
)


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` to ``path`` (used as given: no suffix is added), atomically.

    Raises TypeError (a value it cannot store: a function, an arbitrary object, an object
    array, an ndarray subclass, a set...) or ValueError (a cycle, nesting deeper than 100),
    naming the place in ``obj``, before anything is written.
    """
    target = _fspath(path)
    members: list[tuple[str, np.ndarray]] = []
    tree = _encode(obj, "obj", members, set(), 0, key=False)
    layout = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=False).encode()
    members[:0] = [("layout", np.frombuffer(layout, np.uint8)), ("layout_sha256", np.array(_sha256(layout), "<U64"))]
    directory = os.path.dirname(target) or os.curdir
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w+b") as file:
            with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.comment = b"0" * _DIGEST_CHARS  # overwritten below by the file's digest
                for name, array in members:
                    # A fixed ZipInfo (1980-01-01, no timestamp): the same obj gives the same bytes.
                    with archive.open(zipfile.ZipInfo(f"{name}.npy"), "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            digest = _digest_before_comment(file)
            file.seek(-_DIGEST_CHARS, os.SEEK_END)
            file.write(digest.encode())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    descriptor = os.open(directory, os.O_RDONLY)  # the rename itself is on disk once the directory is
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a :func:`save` checkpoint back, verifying every checksum; never unpickles.

    Raises FileNotFoundError for a missing file, and ValueError ``"<path> is not a valid
    numpy_optim checkpoint: <reason>"`` for anything else: not a zip, truncated, a member
    missing or extra, altered bytes (the reason names the array's place in the tree and says
    "checksum mismatch"). A dtype that needs ml_dtypes raises ModuleNotFoundError without it.
    """
    target = _fspath(path)
    with open(target, "rb") as file:
        try:
            return _Reader(file).load()
        except _DAMAGE as error:  # zipfile's, numpy's and json's reasons as "Type: message"
            reason = str(error) if type(error) is ValueError else f"{type(error).__name__}: {error}".removesuffix(": ")
            raise ValueError(f"{target} is not a valid numpy_optim checkpoint: {reason}") from error


# ----- save: the tree as JSON nodes, the arrays as members ----------------------------------


def _encode(value: Any, where: str, members: list[tuple[str, np.ndarray]], open_ids: set[int], depth: int,
            key: bool) -> dict[str, Any]:
    """The layout node of ``value`` (at ``where`` in obj); arrays are appended to ``members``.
    ``open_ids`` holds the containers being encoded (a cycle comes back to one of them)."""
    kind = type(value)
    if key and kind not in _KEY_TYPES:
        raise TypeError(f"{where}: cannot store the dict key {value!r:.80} of type {_type_name(value)}; "
                        "keys must be None, bool, int, float, complex, str or tuples of them")
    if value is None:
        return {"none": None}
    if kind is bool:
        return {"bool": value}
    if kind is int:
        return {"int": hex(value)}  # hex: exact at any size, and free of int-to-str digit limits
    if kind is float:
        return {"float": _float_bits(value)}
    if kind is complex:
        return {"complex": [_float_bits(value.real), _float_bits(value.imag)]}
    if kind is str:
        return {"str": value}
    if kind is np.ndarray:
        return {"array": _add_array(value, where, members)}
    if isinstance(value, np.generic):
        return {"scalar": _add_array(np.asarray(value), where, members)}
    if kind not in (list, tuple, dict):
        raise TypeError(f"{where}: cannot store {_describe(value)}; a checkpoint holds {_CAN_STORE}")
    if id(value) in open_ids:
        raise ValueError(f"{where}: cannot store a {kind.__name__} that contains itself (a cycle)")
    if depth >= _MAX_DEPTH:
        raise ValueError(f"{where}: cannot store containers nested deeper than {_MAX_DEPTH} levels")
    open_ids.add(id(value))
    node: dict[str, Any]
    if kind is dict:
        node = {"dict": [[_encode(k, where, members, open_ids, depth + 1, key=True),
                          _encode(v, f"{where}[{k!r}]", members, open_ids, depth + 1, key=False)]
                         for k, v in value.items()]}
    else:
        node = {kind.__name__: [_encode(v, f"{where}[{i}]", members, open_ids, depth + 1, key=key)
                                for i, v in enumerate(value)]}
    open_ids.remove(id(value))
    return node


def _add_array(array: np.ndarray, where: str, members: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Append ``array`` (as C-order values, or as raw bits) to ``members``; its layout record."""
    dtype = array.dtype
    if dtype.hasobject:
        raise TypeError(f"{where}: cannot store an array of dtype {dtype} (it holds Python objects)")
    if dtype.names is not None:
        raise TypeError(f"{where}: cannot store an array of the structured dtype {dtype} (not supported)")
    record: dict[str, Any] = {"member": f"a{len(members)}"}
    stored = array if array.flags.c_contiguous else array.copy(order="C")
    if np.dtype(dtype.str) != dtype:  # the .npy header cannot describe it: its raw bits, and its name
        if dtype.itemsize not in (1, 2, 4, 8) or not _known_by_name(dtype):
            raise TypeError(f"{where}: cannot store an array of dtype {dtype}: the .npy format does not "
                            f"describe it and np.dtype({dtype.name!r}) does not give it back")
        record["bits_of"] = dtype.name
        stored = stored.view(f"u{dtype.itemsize}")
    record.update(dtype=stored.dtype.str, shape=list(stored.shape),
                  sha256=_array_digest(stored.dtype.str, stored.shape, stored))
    members.append((record["member"], stored))
    return record


def _known_by_name(dtype: np.dtype) -> bool:
    try:
        return np.dtype(dtype.name) == dtype
    except TypeError:
        return False


def _describe(value: Any) -> str:
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"a function ({getattr(value, '__qualname__', value)})"
    if isinstance(value, np.ndarray):
        return f"a {_type_name(value)} (an ndarray subclass; np.asarray gives its values as an ndarray)"
    return f"a value of type {_type_name(value)}"


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


# ----- load: members checked against the layout, the tree rebuilt ---------------------------


class _Reader:
    """One open checkpoint file: its members read and checked, its tree rebuilt."""

    def __init__(self, file: IO[bytes]):
        self.file = file
        self.size = os.fstat(file.fileno()).st_size
        self.used: set[str] = set()  # the array members the tree has read

    def load(self) -> Any:
        with zipfile.ZipFile(self.file) as self.archive:
            self.names = self.archive.namelist()
            if len(set(self.names)) != len(self.names):
                raise ValueError(f"duplicate member names in {sorted(self.names)}")
            for info in self.archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise ValueError(f"member {info.filename} is compressed (method {info.compress_type})")
            text = self.read("layout.npy", "layout", np.dtype(np.uint8), None).tobytes()
            digest = self.read("layout_sha256.npy", "layout", np.dtype("<U64"), ())[()]
            if _sha256(text) != digest:
                raise ValueError("layout: checksum mismatch (its sha256 differs from layout_sha256)")
            layout = json.loads(text)
            if type(layout) is not dict or layout.get("format") != FORMAT:
                raise ValueError(f"layout: not a {FORMAT} layout")
            if layout.get("version") != VERSION:
                raise ValueError(f"format version {layout.get('version')!r} is not supported "
                                 f"(this numpy_optim reads version {VERSION})")
            obj = self.decode(layout["tree"], "obj")
            extra = sorted(set(self.names) - {"layout.npy", "layout_sha256.npy"} - self.used)
            if extra:
                raise ValueError(f"unexpected members {extra}: the layout does not use them")
        if _digest_before_comment(self.file).encode() != self.file.read(_DIGEST_CHARS):
            raise ValueError("file checksum mismatch: the zip comment is not the sha256 of the bytes before it")
        return obj

    def decode(self, node: Any, where: str) -> Any:
        """The value of layout ``node`` (at ``where`` in obj)."""
        if type(node) is not dict or len(node) != 1:
            raise ValueError(f"{where}: malformed layout node {node!r:.80}")
        [(tag, payload)] = node.items()
        if tag == "none" and payload is None:
            return None
        if tag in ("bool", "str") and type(payload) is (bool if tag == "bool" else str):
            return payload
        if tag == "int" and type(payload) is str:
            return int(payload, 16)
        if tag == "float":
            return _float(payload)
        if tag == "complex" and type(payload) is list and len(payload) == 2:
            return complex(_float(payload[0]), _float(payload[1]))
        if tag in ("list", "tuple") and type(payload) is list:
            items = [self.decode(item, f"{where}[{i}]") for i, item in enumerate(payload)]
            return items if tag == "list" else tuple(items)
        if tag == "dict" and type(payload) is list:
            result = {}
            for key_node, value_node in payload:
                key = self.decode(key_node, where)
                result[key] = self.decode(value_node, f"{where}[{key!r}]")
            return result
        if tag in ("array", "scalar") and type(payload) is dict:
            array = self.array(payload, where)
            if tag == "scalar" and array.ndim:
                raise ValueError(f"{where}: a scalar of shape {array.shape}")
            return array[()] if tag == "scalar" else array
        raise ValueError(f"{where}: malformed layout node {node!r:.80}")

    def array(self, record: dict[str, Any], where: str) -> np.ndarray:
        """The array of layout ``record``, its member checked against the record."""
        member, descr, shape = f"{record['member']}.npy", record["dtype"], tuple(record["shape"])
        if member in self.used:
            raise ValueError(f"{where}: member {member} is used twice")
        self.used.add(member)
        dtype = np.dtype(descr)
        if dtype.str != descr or dtype.hasobject or dtype.names is not None:
            raise ValueError(f"{where}: the layout's dtype {descr!r} is not one save writes")
        restored = _named_dtype(record["bits_of"], where) if "bits_of" in record else dtype
        if restored.itemsize != dtype.itemsize:
            raise ValueError(f"{where}: dtype {restored} is not {dtype.itemsize} bytes wide")
        array = self.read(member, where, dtype, shape, restored)
        if _array_digest(descr, shape, array) != record["sha256"]:
            raise ValueError(f"{where}: checksum mismatch (the sha256 of member {member})")
        return array

    def read(self, name: str, where: str, dtype: np.dtype, shape: tuple[int, ...] | None,
             restored: np.dtype | None = None) -> np.ndarray:
        """Member ``name`` as an array of ``restored`` (default ``dtype``) bits, its .npy header
        checked to hold ``dtype`` and ``shape`` (None: any 1-d) before anything is allocated."""
        if name not in self.names:
            raise ValueError(f"{where}: member {name} is missing")
        info = self.archive.getinfo(name)
        stream = self.archive.open(info)
        try:
            with stream:
                version = np.lib.format.read_magic(stream)
                if version not in _HEADER_READERS:
                    raise ValueError(f"{where}: member {name} has .npy version {version}")
                header = _HEADER_READERS[version](stream)
                expected: tuple[int, ...] = header[0] if shape is None else shape
                if header != (expected, False, dtype) or len(expected) != 1 and shape is None:
                    raise ValueError(f"{where}: member {name} holds {header}, the layout says "
                                     f"{(expected, False, dtype)}")
                nbytes = dtype.itemsize * math.prod(expected)
                if info.file_size != stream.tell() + nbytes or info.file_size > self.size:
                    raise ValueError(f"{where}: member {name} is {info.file_size} bytes, its header says "
                                     f"{stream.tell()} + {nbytes}")
                array = np.empty(expected, restored or dtype)
                data = _bytes(array)
                for start in range(0, nbytes, _CHUNK):
                    piece = stream.read(min(_CHUNK, nbytes - start))
                    if len(piece) != min(_CHUNK, nbytes - start):
                        raise ValueError(f"{where}: member {name} is truncated")
                    data[start:start + len(piece)] = np.frombuffer(piece, np.uint8)
                if stream.read(1):
                    raise ValueError(f"{where}: member {name} is longer than its header says")
        except zipfile.BadZipFile as error:  # zipfile's CRC-32 check, made as the member's end is read
            raise ValueError(f"{where}: checksum mismatch ({error})") from None
        return array


def _named_dtype(name: Any, where: str) -> np.dtype:
    """``np.dtype(name)``, importing ml_dtypes (bfloat16, float8, int4 ...) if NumPy alone lacks it."""
    if type(name) is not str:
        raise ValueError(f"{where}: malformed dtype name {name!r:.80}")
    with contextlib.suppress(TypeError):
        return np.dtype(name)
    try:
        import ml_dtypes  # noqa: F401  (registers its dtypes with NumPy by name)
    except ImportError:
        raise ModuleNotFoundError(f"{where}: the checkpoint holds an array of dtype {name!r}, which needs "
                                  "the ml_dtypes package (pip install ml_dtypes)") from None
    return np.dtype(name)


# ----- shared helpers ------------------------------------------------------------------------


def _fspath(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}")
    result = os.fspath(path)
    if not isinstance(result, str):
        raise TypeError(f"path must name a file by a str, got {result!r:.80}")
    return result


def _float_bits(value: float) -> str:
    return struct.pack(">d", value).hex()


def _float(bits: Any) -> float:
    if type(bits) is not str or len(bits) != 16:
        raise ValueError(f"malformed float {bits!r:.40}")
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


def _bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of C-contiguous ``array`` as a flat uint8 view (empty if it has none)."""
    return array.reshape(-1).view(np.uint8) if array.nbytes else np.empty(0, np.uint8)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_digest(descr: str, shape: tuple[int, ...], array: np.ndarray) -> str:
    """sha256 of ``json.dumps([descr, shape])`` followed by the bytes of C-contiguous ``array``."""
    digest = hashlib.sha256(json.dumps([descr, list(shape)]).encode())
    digest.update(_bytes(array).data)
    return digest.hexdigest()


def _digest_before_comment(file: IO[bytes]) -> str:
    """sha256 (hex) of ``file`` but its last 64 bytes, where the zip comment holds it; the file is
    left positioned at those bytes."""
    remaining = file.seek(0, os.SEEK_END) - _DIGEST_CHARS
    if remaining < 0:
        raise ValueError("the file is too short")
    file.seek(0)
    digest = hashlib.sha256()
    while remaining:
        data = file.read(min(_CHUNK, remaining))
        if not data:
            raise EOFError("the file ended while it was read")
        digest.update(data)
        remaining -= len(data)
    return digest.hexdigest()

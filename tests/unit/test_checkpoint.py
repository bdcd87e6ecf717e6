"""numpy_optim.checkpoint: save / load round trips bit for bit, refusals change nothing,
damaged files are refused, a kill -9 during save leaves a whole file, and the format is the
one the module docstring describes."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pathlib
import random
import select
import struct
import subprocess
import sys
import time
import warnings
import zipfile

import checkpoint_writer
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpy_optim
from numpy_optim.checkpoint import load, save
from numpy_optim.lr_scheduler import StepLR

ROOT = pathlib.Path(__file__).resolve().parents[2]
WRITER = pathlib.Path(checkpoint_writer.__file__)
NOT_VALID = "is not a valid numpy_optim checkpoint: "
#: Seconds a child process may take before the test calls it hung: a guard against hangs,
#: never a timing the test relies on.
HANG_S = 600


def bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def from_bits(pattern: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", pattern))[0]


def value_bytes(scalar: np.generic) -> bytes:
    """A NumPy scalar's bytes less the padding of x87's 80-bit long double (10 bytes of value
    in each 12 or 16): a scalar's padding bytes are whatever memory held when it was made
    (NumPy copies a long double scalar's value, not its padding), so they differ between two
    scalars of the same value at random."""
    raw = np.asarray(scalar).tobytes()
    if scalar.dtype.kind in "fc" and (np.finfo(scalar.dtype).nexp, np.finfo(scalar.dtype).nmant) == (15, 63):
        part = scalar.dtype.itemsize // (2 if scalar.dtype.kind == "c" else 1)  # a real or an imaginary part
        return b"".join(raw[start:start + 10] for start in range(0, len(raw), part))
    return raw


def assert_same(original, loaded, where="obj"):
    """``loaded`` is ``original`` exactly: types, dtypes, shapes, bits, key order; its arrays
    are fresh C-contiguous writeable ndarrays."""
    assert type(loaded) is type(original), f"{where}: {type(loaded)} is not {type(original)}"
    if type(original) is np.ndarray:
        assert (loaded.dtype, loaded.shape) == (original.dtype, original.shape), where
        assert loaded.flags.c_contiguous and loaded.flags.writeable and loaded.flags.owndata, where
        assert loaded.tobytes() == original.tobytes(order="C"), where
    elif isinstance(original, np.generic):
        assert loaded.dtype == original.dtype, where
        assert value_bytes(loaded) == value_bytes(original), where
    elif type(original) is float:
        assert bits(loaded) == bits(original), f"{where}: {loaded.hex()} is not {original.hex()}"
    elif type(original) is complex:
        assert (bits(loaded.real), bits(loaded.imag)) == (bits(original.real), bits(original.imag)), where
    elif type(original) in (list, tuple):
        assert len(loaded) == len(original), where
        for i, (a, b) in enumerate(zip(original, loaded)):
            assert_same(a, b, f"{where}[{i}]")
    elif type(original) is dict:
        assert len(loaded) == len(original), where
        for (key_a, value_a), (key_b, value_b) in zip(original.items(), loaded.items()):
            assert_same(key_a, key_b, f"{where} key {key_a!r}")
            assert_same(value_a, value_b, f"{where}[{key_a!r}]")
    else:  # None, bool, int, str
        assert loaded == original, where


def round_trip(obj, path):
    save(obj, path)
    loaded = load(path)
    assert_same(obj, loaded)
    return loaded


# ----- round trips ---------------------------------------------------------------------------


def test_nested_objects_round_trip_exactly(tmp_path):
    obj = {
        "state": [{"exp_avg": np.arange(6.0).reshape(2, 3), "step": 3}, {}],
        "pair": (1, [2, (3,)], ()),
        "empty": ([], (), {}),
        "flags": [True, False, None, 1, 0],  # bools stay bools beside the ints 1 and 0
        "ints": [0, -1, 2**64, -(2**1000), 10**5000],  # 10**5000: past int-to-str's 4300-digit limit
        "floats": [0.1, -2.5e-308, 5e-324, 1.7976931348623157e308],
        "complex": [1 + 2j, complex(-0.0, float("inf"))],
        "text": ["", "é ☃ \U0001f600", "nul\x00inside", "lone surrogate \ud800", "quote\"back\\slash"],
        "numpy": [np.float64(0.1), np.float32(1.5), np.float16(-2), np.int8(-128), np.uint64(2**64 - 1),
                  np.bool_(True), np.complex64(1 - 1j), np.str_("ab"), np.bytes_(b"cd"), np.datetime64("2026-01-02"),
                  np.timedelta64(5, "ms"), np.longdouble(1) / 3],
        0: {0: {"momentum_buffer": np.zeros(3, np.float32)}},  # torch-like integer keys
    }
    loaded = round_trip(obj, tmp_path / "nested.ckpt")
    assert list(loaded) == ["state", "pair", "empty", "flags", "ints", "floats", "complex", "text", "numpy", 0]
    assert loaded["ints"][4] == 10**5000 and type(loaded["numpy"][11]) is np.longdouble


def test_float_specials_are_bit_exact(tmp_path):
    patterns = [
        0x8000000000000000,  # -0.0
        0x7FF0000000000000, 0xFFF0000000000000,  # +inf, -inf
        0x7FF8000000000000, 0xFFF8000000000000,  # the quiet nans
        0x7FF8000000000123, 0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF,  # nans with payloads (one signaling)
        0x0000000000000001, 0x000FFFFFFFFFFFFF,  # subnormals
    ]
    floats = [from_bits(p) for p in patterns]
    arrays = {
        "float64": np.array(patterns, np.uint64).view(np.float64),
        "float32": np.array([0x80000000, 0x7F800001, 0xFFC00123, 0x7F800000, 1], np.uint32).view(np.float32),
        "float16": np.array([0x8000, 0x7C01, 0xFE00, 0x7C00, 1], np.uint16).view(np.float16),
    }
    scalars = [arrays["float64"][5], arrays["float32"][2], arrays["float16"][1]]  # nans with payloads
    obj = {"python": floats, "complex": complex(floats[5], floats[0]), "arrays": arrays, "scalars": scalars,
           from_bits(patterns[5]): "a nan key"}
    loaded = round_trip(obj, tmp_path / "specials.ckpt")
    assert [bits(x) for x in loaded["python"]] == patterns
    assert [x.hex() for x in loaded["python"]] == [x.hex() for x in floats]
    assert (bits(loaded["complex"].real), bits(loaded["complex"].imag)) == (patterns[5], patterns[0])
    for name, array in arrays.items():
        uint = f"u{array.itemsize}"
        assert loaded["arrays"][name].dtype == array.dtype
        assert loaded["arrays"][name].view(uint).tolist() == array.view(uint).tolist()
    for loaded_scalar, scalar, pattern in zip(loaded["scalars"], scalars, [0x7FF8000000000123, 0xFFC00123, 0x7C01]):
        assert type(loaded_scalar) is type(scalar) and np.asarray(loaded_scalar).view(f"u{scalar.itemsize}") == pattern
    assert bits(list(loaded)[-1]) == patterns[5]


DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g", "c8", "c16", "G", ">f8", ">i4",
          "<U5", "S3", "V4", "V0", "M8[ns]", "m8[s]", "M8[D]"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_shape_and_memory_layout(tmp_path, dtype):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)

    def make(shape):  # random bits of every element (nans with payloads included); code points for str
        size = int(np.prod(shape))
        if dtype.itemsize == 0:
            return np.zeros(shape, dtype)
        if dtype.kind == "U":
            return rng.integers(0, 0x110000, size * dtype.itemsize // 4).astype("<u4").view(dtype).reshape(shape)
        return np.frombuffer(rng.bytes(dtype.itemsize * size), dtype, count=size).reshape(shape).copy()

    base = make((4, 6))
    obj = {
        "0-d": make(()), "size 0": make((0,)), "size 0 in 3-d": make((3, 0, 2)), "1-d": make((5,)), "2-d": base,
        "fortran": np.asfortranarray(base), "transposed": base.T, "strided": base[::2, ::-3],
        "broadcast": np.broadcast_to(base[0], (3, 6)), "read-only": base.copy(),
        "scalar": make(())[()],
    }
    obj["read-only"].flags.writeable = False
    assert dtype.itemsize == 0 or not (obj["fortran"].flags.c_contiguous or obj["strided"].flags.c_contiguous)
    loaded = round_trip(obj, tmp_path / "dtypes.ckpt")
    assert loaded["transposed"].shape == (6, 4) and loaded["broadcast"].strides[0] == 6 * dtype.itemsize


def test_dict_keys_of_every_kind_keep_type_and_order(tmp_path):
    keys = ["s", 3, -(2**80), True, None, 1.5, -0.0, float("inf"), 2j, (), (1, "a"), ((None, 2.5), (False,)), "", 0]
    obj = {key: i for i, key in enumerate(keys)}
    assert len(obj) == len(keys) - 1  # 0 == -0.0: the last key updates the -0.0 entry
    loaded = round_trip(obj, tmp_path / "keys.ckpt")
    assert [type(k) for k in loaded] == [type(k) for k in obj] and bits(list(loaded)[6]) == bits(-0.0)


def test_optimizer_and_scheduler_resume_bit_for_bit(tmp_path):
    shapes, dtypes = [(4, 3), (5,), (), (6,)], [np.float64, np.float64, np.float64, np.float32]
    rng = np.random.default_rng(7)
    grads = [[rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)] for _ in range(10)]

    def build(params):
        entries = [{"params": p, "grad": np.zeros_like(p)} for p in params]
        optimizer = numpy_optim.Adam(entries, lr=0.05, betas=(0.8, 0.99), amsgrad=True)
        return optimizer, StepLR(optimizer, step_size=2, gamma=0.5)

    def run(optimizer, scheduler, steps):
        for step_grads in steps:
            for entry, g in zip(optimizer.param_groups, step_grads):
                entry["grad"][...] = g
            optimizer.step()
            scheduler.step()

    def initial():
        return [np.linspace(-1, 1, int(np.prod(s))).reshape(s).astype(d) for s, d in zip(shapes, dtypes)]

    whole = build(initial())
    run(*whole, grads)
    part = build(initial())
    run(*part, grads[:4])
    snapshot = {"optimizer": part[0].state_dict(), "scheduler": part[1].state_dict(),
                "params": [e["params"] for e in part[0].param_groups]}
    loaded = round_trip(snapshot, tmp_path / "run.ckpt")
    resumed = build(loaded["params"])
    resumed[0].load_state_dict(loaded["optimizer"])
    resumed[1].load_state_dict(loaded["scheduler"])
    run(*resumed, grads[4:])
    for a, b in zip(whole[0].param_groups, resumed[0].param_groups):
        assert a["params"].dtype == b["params"].dtype and a["params"].tobytes() == b["params"].tobytes()
    assert_same(whole[0].state_dict(), resumed[0].state_dict())
    assert_same(whole[1].state_dict(), resumed[1].state_dict())


def test_bfloat16_and_other_ml_dtypes_as_raw_bits(tmp_path):
    import ml_dtypes  # in the test extra (pyproject.toml)
    bf16 = np.array([0x8000, 0x7F81, 0xFFC1, 0x7F80, 0x3F80], np.uint16).view(ml_dtypes.bfloat16)
    obj = {"w": bf16, "fp8": np.arange(4).astype(ml_dtypes.float8_e4m3fn),
           "i4": np.arange(-3, 3).astype(ml_dtypes.int4), "scalar": bf16[4],
           "fortran": np.asfortranarray(np.ones((2, 3), ml_dtypes.bfloat16))}
    path = tmp_path / "bf16.ckpt"
    loaded = round_trip(obj, path)
    assert loaded["w"].dtype == np.dtype(ml_dtypes.bfloat16) and loaded["w"].view(np.uint16).tolist() == [
        0x8000, 0x7F81, 0xFFC1, 0x7F80, 0x3F80]
    assert type(loaded["scalar"]) is ml_dtypes.bfloat16 and float(loaded["scalar"]) == 1.0
    with np.load(path, allow_pickle=False) as npz:  # stored as uint16, named in the layout
        assert npz["a0"].dtype == np.uint16 and npz["a0"].tolist() == bf16.view(np.uint16).tolist()
        record = json.loads(npz["layout"].tobytes())["tree"]["dict"][0][1]["array"]
    assert (record["dtype"], record["bits_of"]) == ("<u2", "bfloat16")
    # Without ml_dtypes, load names the dtype and the package.
    code = ("import sys; sys.modules['ml_dtypes'] = None\nfrom numpy_optim.checkpoint import load\n"
            "try:\n    load(sys.argv[1])\nexcept ModuleNotFoundError as error:\n    print(error)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=HANG_S)
    assert "obj['w']" in result.stdout and "'bfloat16'" in result.stdout and "ml_dtypes" in result.stdout, (
        result.stdout + result.stderr)


def test_the_same_object_gives_the_same_bytes_and_the_path_is_used_as_given(tmp_path):
    obj = {"w": np.arange(3.0), "n": 2}
    save(obj, tmp_path / "a")  # no suffix added
    save(obj, str(tmp_path / "b.npz"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b.npz"]
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b.npz").read_bytes()
    for bad in (b"bytes path", 3, None):
        with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
            save(obj, bad)
        with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
            load(bad)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing")


# ----- Hypothesis: drawn trees round trip exactly -------------------------------------------

NUMERIC = [np.dtype(d) for d in ["?", "i1", "u2", "i4", "u8", "f2", "f4", "f8", "c8", "c16", ">f4", "M8[us]", "m8"]]


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(NUMERIC))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    data = draw(st.binary(min_size=dtype.itemsize * int(np.prod(shape)), max_size=dtype.itemsize * int(np.prod(shape))))
    array = np.frombuffer(data, dtype).reshape(shape).copy()
    return draw(st.sampled_from([array, array.T, np.asfortranarray(array)] + ([array[..., ::-1]] if shape else [])))


@st.composite
def numpy_scalars(draw):
    dtype = draw(st.sampled_from(NUMERIC))
    return np.frombuffer(draw(st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize)), dtype)[0]


python_floats = st.floats() | st.integers(0, 2**64 - 1).map(from_bits)  # any bits: nan payloads too
text = st.text(st.characters(exclude_categories=()), max_size=8)  # surrogates included
key_leaves = st.none() | st.booleans() | st.integers() | python_floats | st.complex_numbers() | text
keys = st.recursive(key_leaves, lambda k: st.lists(k, max_size=3).map(tuple), max_leaves=4)
leaves = key_leaves | st.integers(-(2**3000), 2**3000) | arrays() | numpy_scalars()
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


@given(obj=trees)
def test_drawn_trees_round_trip_exactly(tmp_path_factory, obj):
    round_trip(obj, tmp_path_factory.getbasetemp() / "drawn.ckpt")


# ----- refusals: nothing written ------------------------------------------------------------


def nested(depth):
    obj = []
    for _ in range(depth - 1):
        obj = [obj]
    return obj


def cycle():
    a = [1]
    a.append({"back": a})
    return {"state": a}


with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix's own
    MATRIX = np.asmatrix(np.eye(2))
REFUSED = [
    pytest.param({"state": [{"f": lambda x: x}]}, TypeError, r"obj\['state'\]\[0\]\['f'\]: cannot store a function",
                 id="lambda"),
    pytest.param([len], TypeError, r"obj\[0\]: cannot store a function \(len\)", id="builtin"),
    pytest.param({"o": object()}, TypeError, r"obj\['o'\]: cannot store a value of type object", id="object"),
    pytest.param({"s": {1, 2}}, TypeError, r"obj\['s'\]: cannot store a value of type set", id="set"),
    pytest.param([b"raw"], TypeError, r"obj\[0\]: cannot store a value of type bytes", id="bytes"),
    pytest.param([collections.OrderedDict(a=1)], TypeError, "collections.OrderedDict", id="dict-subclass"),
    pytest.param({"a": np.array([1, None], object)}, TypeError, r"obj\['a'\]: .*dtype object", id="object-array"),
    pytest.param([np.array(["x"], np.dtypes.StringDType())], TypeError, "StringDType", id="string-dtype"),
    pytest.param([np.zeros(2, "f8,i4")], TypeError, r"obj\[0\]: cannot store an array of the structured dtype .*",
                 id="structured"),
    pytest.param([MATRIX], TypeError, r"obj\[0\]: cannot store a numpy.matrix \(an ndarray subclass",
                 id="matrix"),
    pytest.param([np.ma.masked_array([1.0])], TypeError, "ndarray subclass", id="masked-array"),
    pytest.param({np.int64(0): 1}, TypeError, r"obj: cannot store the dict key np.int64\(0\)", id="numpy-key"),
    pytest.param({(1, frozenset()): 1}, TypeError, "cannot store the dict key frozenset", id="frozenset-in-key"),
    pytest.param(cycle(), ValueError, r"obj\['state'\]\[1\]\['back'\]: cannot store a list that contains itself",
                 id="cycle"),
    pytest.param(nested(101), ValueError, "nested deeper than 100 levels", id="too-deep"),
]


@pytest.mark.parametrize("obj, error, message", REFUSED)
def test_refused_before_anything_is_written(tmp_path, obj, error, message):
    path = tmp_path / "previous.ckpt"
    save({"previous": np.arange(4.0)}, path)
    before = path.read_bytes()
    with pytest.raises(error, match=message):
        save(obj, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same({"previous": np.arange(4.0)}, load(path))


def test_the_deepest_allowed_tree_round_trips(tmp_path):
    assert str(nested(3)) == "[[[]]]"
    round_trip(nested(100), tmp_path / "deep.ckpt")


@pytest.mark.parametrize("stage", ["write_array", "fsync", "replace"])
def test_an_error_while_writing_removes_the_temporary_file(tmp_path, monkeypatch, stage):
    path = tmp_path / "previous.ckpt"
    save({"previous": 1}, path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    owner = {"write_array": np.lib.format, "fsync": os, "replace": os}[stage]
    monkeypatch.setattr(owner, stage, interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.arange(10.0)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


# ----- damaged files: every one refused with ValueError -------------------------------------

SMALL = {"w": np.arange(5.0), "v": np.ones(5), "n": 3, "t": ("a", None)}


def refused(path, match=""):
    """Whether load(path) raises ValueError (with ``match`` in its message): any other result fails."""
    with pytest.raises(ValueError) as info:
        load(path)
    assert str(info.value).startswith(f"{path} {NOT_VALID}") and match in str(info.value), str(info.value)
    return True


def test_truncated_files_are_refused(tmp_path):
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    save(SMALL, good)
    data = good.read_bytes()
    count = 0
    for length in range(len(data)):  # every length, 0 bytes included
        bad.write_bytes(data[:length])
        count += refused(bad)
    assert count == len(data) > 1000


def test_every_flipped_byte_is_refused(tmp_path):
    """Every byte, flipped in one bit and in all 8: refused. A flip in an array's values names
    the array, one in the layout's JSON names the layout."""
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    save(SMALL, good)
    data = good.read_bytes()
    layout = np.lib.format.read_array(io.BytesIO(members(good)["layout.npy"])).tobytes()
    places = {}  # position -> what the message must name
    for values, name in ((SMALL["w"].tobytes(), "obj['w']"), (SMALL["v"].tobytes(), "obj['v']"), (layout, "layout")):
        start = data.index(values)
        places.update({position: f"{name}: checksum mismatch" for position in range(start, start + len(values))})
    assert len(places) == 40 + 40 + len(layout) > 500
    count = 0
    for position in range(len(data)):
        for mask in (0x01, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= mask
            bad.write_bytes(damaged)
            count += refused(bad, places.get(position, ""))
    assert count == 2 * len(data) > 2000


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(path, contents, comment=b""):
    """A zip of ``contents`` ({member name: bytes}) at ``path``, as zipfile writes it (CRCs right)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = comment
        for name, data in contents.items():
            archive.writestr(name, data)


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_members_removed_or_added_are_refused(tmp_path):
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    save(SMALL, good)
    original = members(good)
    assert sorted(original) == ["a0.npy", "a1.npy", "layout.npy", "layout_sha256.npy"]
    count = 0
    for name in original:
        rewrite(bad, {k: v for k, v in original.items() if k != name})
        count += refused(bad, f"member {name} is missing")
    rewrite(bad, {**original, "a2.npy": npy(np.zeros(1))})
    count += refused(bad, "unexpected members ['a2.npy']")
    rewrite(bad, {**original, "extra.txt": b"hello"})
    count += refused(bad, "unexpected members ['extra.txt']")
    rewrite(bad, original)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(bad, "a") as archive:
        archive.writestr("a0.npy", original["a0.npy"])
    count += refused(bad, "duplicate member names")
    # The same members, rewritten: the zip's comment no longer holds the file's sha256.
    rewrite(bad, original, comment=b"0" * 64)
    count += refused(bad, "file checksum mismatch")
    assert count == len(original) + 4


def test_an_edited_layout_or_array_is_refused(tmp_path):
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    save(SMALL, good)
    original = members(good)
    layout = np.lib.format.read_array(io.BytesIO(original["layout.npy"])).tobytes()
    swapped = layout.replace(b'"a0"', b'"a_"').replace(b'"a1"', b'"a0"').replace(b'"a_"', b'"a1"')
    assert swapped != layout and json.loads(swapped)  # obj['w'] now points to the ones, obj['v'] to the arange
    swapped_layout = npy(np.frombuffer(swapped, np.uint8))
    count = 0
    rewrite(bad, {**original, "layout.npy": swapped_layout})  # its sha256 left as it was
    count += refused(bad, "layout: checksum mismatch")
    rewrite(bad, {**original, "layout.npy": swapped_layout,
                  "layout_sha256.npy": npy(np.array(hashlib.sha256(swapped).hexdigest()))})
    count += refused(bad, "obj['w']: checksum mismatch (the sha256 of member a1.npy)")
    altered = np.arange(5.0)
    altered[2] = np.nextafter(2.0, 3.0)  # one bit, with a CRC-32 that matches
    rewrite(bad, {**original, "a0.npy": npy(altered)})
    count += refused(bad, "obj['w']: checksum mismatch (the sha256 of member a0.npy)")
    rewrite(bad, {**original, "a0.npy": npy(np.arange(5.0, dtype=np.float32))})
    count += refused(bad, "obj['w']: member a0.npy holds ((5,), False, dtype('float32'))")
    rewrite(bad, {**original, "layout.npy": npy(np.frombuffer(b"[not json", np.uint8)),
                  "layout_sha256.npy": npy(np.array(hashlib.sha256(b"[not json").hexdigest()))})
    count += refused(bad)
    assert count == 5


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    path = tmp_path / "other"
    count = 0
    for data in (b"", b"not a zip at all", os.urandom(4096)):
        path.write_bytes(data)
        count += refused(path)
    np.savez(path, w=np.arange(3))  # writes path + ".npz"
    count += refused(tmp_path / "other.npz", "layout: member layout.npy is missing")
    assert count == 4


# ----- kill -9 during save ------------------------------------------------------------------


def test_kill_during_save_leaves_a_whole_checkpoint(tmp_path):
    """A child saves A and B in turn to one path; SIGKILL at a random moment, in at least 8
    rounds: the file loads as A or B, whole. A kill between the temporary file's creation
    and its rename leaves that file behind: the rounds go on (up to 100) until one has
    landed there, so that case is seen however the machine's load moves the moments."""
    path = tmp_path / "run.ckpt"
    expected = [checkpoint_writer.contents(which) for which in "AB"]
    rng = random.Random(4)
    rounds = interrupted = 0
    while rounds < 8 or (not interrupted and rounds < 100):
        child = subprocess.Popen([sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            started, _, _ = select.select([child.stdout], [], [], HANG_S)  # (a guard against a hung child)
            ready = child.stdout.readline() if started else b"(nothing within the guard's time)"
            if ready == b"ready\n":
                time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.kill()  # SIGKILL
            _, errors = child.communicate()
        assert ready == b"ready\n", ready.decode() + errors.decode()
        loaded = load(path)
        assert loaded["which"] in "AB"
        assert_same(expected["AB".index(loaded["which"])], loaded)
        leftovers = [p for p in tmp_path.iterdir() if p != path]
        assert all(p.name.startswith(".run.ckpt.") and p.name.endswith(".tmp") for p in leftovers), leftovers
        interrupted += bool(leftovers)
        for p in leftovers:
            p.unlink()
        rounds += 1
    assert interrupted >= 1, f"none of {rounds} kills landed between a temporary file's creation and its rename"


# ----- the format on disk -------------------------------------------------------------------


def test_np_load_reads_the_members_the_docstring_describes(tmp_path):
    path = tmp_path / "doc.ckpt"
    obj = {"n": -3, "x": 0.5, "t": (None, True, "s"), "c": 1j, "w": np.arange(6, dtype=np.int16).reshape(2, 3),
           "lr": np.float32(0.25), "l": [2**70]}
    save(obj, path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz.files == ["layout", "layout_sha256", "a0", "a1"]
        layout_bytes = npz["layout"].tobytes()
        assert npz["layout"].dtype == np.uint8 and npz["layout"].ndim == 1
        assert npz["layout_sha256"].shape == ()
        assert str(npz["layout_sha256"]) == hashlib.sha256(layout_bytes).hexdigest()
        assert npz["a0"].dtype == np.int16 and npz["a0"].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert npz["a1"].shape == () and npz["a1"].dtype == np.float32 and npz["a1"] == 0.25
    layout = json.loads(layout_bytes)

    def digest(dtype, shape, data):
        return hashlib.sha256(json.dumps([dtype, shape]).encode() + data).hexdigest()

    w = {"member": "a0", "dtype": "<i2", "shape": [2, 3],
         "sha256": digest("<i2", [2, 3], bytes.fromhex("000001000200030004000500"))}
    lr = {"member": "a1", "dtype": "<f4", "shape": [], "sha256": digest("<f4", [], bytes.fromhex("0000803e"))}
    assert layout == {"format": "numpy_optim.checkpoint", "version": 1, "tree": {"dict": [
        [{"str": "n"}, {"int": "-0x3"}],
        [{"str": "x"}, {"float": "3fe0000000000000"}],
        [{"str": "t"}, {"tuple": [{"none": None}, {"bool": True}, {"str": "s"}]}],
        [{"str": "c"}, {"complex": ["0000000000000000", "3ff0000000000000"]}],
        [{"str": "w"}, {"array": w}],
        [{"str": "lr"}, {"scalar": lr}],
        [{"str": "l"}, {"list": [{"int": "0x400000000000000000"}]}],
    ]}}
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        assert archive.comment == data[-64:] == hashlib.sha256(data[:-64]).hexdigest().encode()
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}

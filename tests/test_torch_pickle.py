"""Tests for the torch-free ``pytorch_model.bin`` reader (``minflaubert.checkpoints.torch_pickle``).

Three kinds of files are read:
- ``tests/fixtures/tiny_state_dict.bin``, written once by torch (``scripts/make_torch_bin_fixture.py``) with
  deterministic values, so its contents are checked (and fuzzed) without torch;
- files assembled here opcode by opcode (``_tensor_pickle`` + ``_write_torch_zip``), for layouts torch will not
  write on this machine (big-endian, compressed) and for deliberately inconsistent or hostile files;
- with torch installed, fresh ``torch.save`` files of transformers' Flaubert models and of awkward tensors, read in a
  subprocess where ``import torch`` fails and compared with ``tensor.numpy()`` exactly.
"""
import builtins
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import FIXTURES, REPO
from minflaubert.checkpoints.torch_pickle import MAX_EXPANSION, UnsafeCheckpointError, load_torch_bin

TINY = FIXTURES / "tiny_state_dict.bin"


# ---------------------------------------------------------------------------------------------------------------
# Writing torch-layout files without torch.
# ---------------------------------------------------------------------------------------------------------------
def _write_torch_zip(path, data_pkl: bytes, storages=None, byteorder="little", compression=zipfile.ZIP_STORED):
    """A zip in torch's layout: archive/data.pkl, archive/data/<key>, archive/byteorder, archive/version."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        if byteorder is not None:
            zf.writestr("archive/byteorder", byteorder)
        for key, raw in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", raw)
        zf.writestr("archive/version", "3\n")
    return path


def _unicode(text: str) -> bytes:
    encoded = text.encode()
    return b"X" + struct.pack("<I", len(encoded)) + encoded  # BINUNICODE


def _int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1: what pickle writes for a larger int


def _tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _tensor_pickle(tensors: dict) -> bytes:
    """The pickle torch writes for ``{name: tensor}``, from ``{name: (storage_class, key, numel, offset, size,
    stride[, "neg"])}``: each value is ``_rebuild_tensor_v2(PERSID(('storage', torch.<class>, key, 'cpu', numel)),
    offset, size, stride, False, {}[, {"neg": True}])`` (the last: torch's lazy "negative view" bit)."""
    body = b""
    for name, (storage_class, key, numel, offset, size, stride, *negative) in tensors.items():
        storage_id = _tuple([_unicode("storage"), b"ctorch\n%s\n" % storage_class.encode(), _unicode(key),
                             _unicode("cpu"), _int(numel)])
        arguments = storage_id + b"Q" + _int(offset) + _tuple(map(_int, size)) + _tuple(map(_int, stride)) + b"\x89}"
        arguments += b"}" + _unicode("neg") + b"\x88s" if negative else b""  # EMPTY_DICT, key, NEWTRUE, SETITEM
        body += _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + arguments + b"tR"
    return b"\x80\x02}(" + body + b"u."  # PROTO 2, EMPTY_DICT, MARK, key/value pairs, SETITEMS, STOP


def _simple_bin(path, byteorder="little", compression=zipfile.ZIP_STORED):
    """float32 (3, 2) + its transpose, bfloat16, int64, in the requested byte order."""
    order = "<" if byteorder == "little" else ">"
    bf16_bits = (np.array([1.5, -2.0, 0.0], np.float32).view(np.uint32) >> 16).astype(order + "u2")
    storages = {
        "0": np.arange(6, dtype=order + "f4").tobytes(),
        "1": bf16_bits.tobytes(),
        "2": np.array([7, -1], dtype=order + "i8").tobytes(),
    }
    tensors = {
        "w": ("FloatStorage", "0", 6, 0, (3, 2), (2, 1)),
        "w_t": ("FloatStorage", "0", 6, 0, (2, 3), (1, 2)),
        "bf16": ("BFloat16Storage", "1", 3, 0, (3,), (1,)),
        "ids": ("LongStorage", "2", 2, 0, (1, 2), (2, 1)),
    }
    return _write_torch_zip(path, _tensor_pickle(tensors), storages, byteorder, compression)


def _assert_simple_values(state):
    np.testing.assert_array_equal(state["w"], np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(state["w_t"], np.arange(6, dtype=np.float32).reshape(3, 2).T)
    np.testing.assert_array_equal(state["bf16"], np.array([1.5, -2.0, 0.0], np.float32))
    np.testing.assert_array_equal(state["ids"], np.array([[7, -1]]))
    assert [state[k].dtype for k in ("w", "bf16", "ids")] == [np.float32, np.float32, np.int64]
    assert all(array.dtype.isnative for array in state.values())


# ---------------------------------------------------------------------------------------------------------------
# Reading valid files, without torch.
# ---------------------------------------------------------------------------------------------------------------
def test_fixture_values_without_torch():
    state = load_torch_bin(TINY)
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = {
        "embeddings.weight": weight,
        "tied.weight": weight,
        "transposed": weight.T,
        "column": weight[1:, 2],
        "half": np.arange(6, dtype=np.float16) / np.float16(4),
        "bf16": np.arange(5, dtype=np.float32) - 2.5,
        "position_ids": np.arange(7, dtype=np.int64)[None],
        "mask": np.arange(4) % 2 == 0,
        "param": np.full(2, 0.5, np.float32),
        "scalar": np.array(3.0, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    assert list(state) == list(expected)  # names and order exactly as saved
    for name, array in expected.items():
        assert state[name].dtype == array.dtype, name
        np.testing.assert_array_equal(state[name], array, err_msg=name)


def test_arrays_are_read_only_views_sharing_the_file():
    state = load_torch_bin(TINY)
    assert np.shares_memory(state["embeddings.weight"], state["tied.weight"])
    assert np.shares_memory(state["embeddings.weight"], state["column"])
    assert not state["embeddings.weight"].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        state["embeddings.weight"][0, 0] = 1.0


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_byte_orders_and_compression(tmp_path, byteorder, compression):
    _assert_simple_values(load_torch_bin(_simple_bin(tmp_path / "m.bin", byteorder, compression)))


def test_missing_byteorder_record_means_little_endian(tmp_path):
    path = _simple_bin(tmp_path / "m.bin")
    with zipfile.ZipFile(path) as zf:
        records = {name: zf.read(name) for name in zf.namelist() if not name.endswith("byteorder")}
    _write_torch_zip(path, records.pop("archive/data.pkl"),
                     {name.rsplit("/", 1)[1]: raw for name, raw in records.items() if "/data/" in name}, None)
    _assert_simple_values(load_torch_bin(path))


# ---------------------------------------------------------------------------------------------------------------
# Inconsistent and damaged files: clear ValueErrors.
# ---------------------------------------------------------------------------------------------------------------
_FLOATS = {"0": np.arange(6, dtype="<f4").tobytes()}


def _bin_with(tmp_path, tensors, storages=_FLOATS, **kwargs):
    return _write_torch_zip(tmp_path / "bad.bin", _tensor_pickle(tensors), storages, **kwargs)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 8, 0, (8,), (1,))}), "holds 24 bytes, the pickle needs 32"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 4, (3,), (1,))}), "reaches element 6"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 0, (2, 2), (4, 2))}), "reaches element 6"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 0, (2,), (-1,))}), "non-negative"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 0, (2, 3), (3,))}), "do not match"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "7", 6, 0, (6,), (1,))}), "record 'archive/data/7' is missing"),
        (lambda p: _bin_with(p, {"a": ("FloatStorage", "0", 6, 0, (6,), (1,)),
                                 "b": ("IntStorage", "0", 6, 0, (6,), (1,))}), "two different types"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 0, (6,), (1,))}, byteorder="middle"), "byte order"),
        (lambda p: _bin_with(p, {"w": ("FloatStorage", "0", 6, 0, (6,), (1,))}, compression=zipfile.ZIP_LZMA),
         "compression method 14"),
        (lambda p: _write_torch_zip(p / "bad.bin", b"\x80\x02]q\x00."), "holds a list, not a state dict"),
        (lambda p: _write_torch_zip(p / "bad.bin", b"\x80\x02}X\x01\x00\x00\x00aK\x01s."), "entry 'a' is a int"),
        (lambda p: _write_torch_zip(p / "bad.bin", b"\x80\x02}(X\x01\x00\x00\x00aK\x01"), "data.pkl is corrupt"),
        (lambda p: _write_torch_zip(p / "bad.bin", b"\x80\x02X\x00\x00\x00\x00Q."), "unexpected persistent id"),
        (lambda p: _write_torch_zip(p / "bad.bin", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)R."),
         "data.pkl is corrupt: TypeError"),
    ],
    ids=["storage-too-small", "offset-past-end", "stride-past-end", "negative-stride", "size-stride-mismatch",
         "missing-storage", "storage-two-types", "bad-byteorder", "lzma-compressed", "top-level-list", "non-tensor-entry",
         "truncated-pickle", "bad-persistent-id", "rebuild-wrong-arguments"],
)
def test_inconsistent_files_give_clear_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as caught:
        load_torch_bin(make(tmp_path))
    assert type(caught.value) is ValueError


def test_not_a_torch_zip(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "text.bin").write_bytes(b"hello, not a checkpoint")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("folder/weights.npy", b"...")
    for name in ("empty.bin", "text.bin"):
        with pytest.raises(ValueError, match="not a readable torch checkpoint"):
            load_torch_bin(tmp_path / name)
    with pytest.raises(ValueError, match="no data.pkl"):
        load_torch_bin(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError):
        load_torch_bin(tmp_path / "absent.bin")


def test_legacy_format_is_refused_with_advice(tmp_path):
    legacy = tmp_path / "legacy.bin"  # what torch < 1.6 wrote first: the pickled magic number, then protocol etc.
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2))
    with pytest.raises(ValueError, match=r"legacy \(pre-1.6\) torch format not supported; re-save or convert"):
        load_torch_bin(legacy)


def test_truncated_storage_data_is_reported(tmp_path):
    path = _simple_bin(tmp_path / "m.bin")
    with zipfile.ZipFile(path) as zf:
        data_start = zf.getinfo("archive/data/0").header_offset
    path.write_bytes(path.read_bytes()[: data_start + 40])
    with pytest.raises(ValueError):
        load_torch_bin(path)


# ---------------------------------------------------------------------------------------------------------------
# Hostile files cost what they weigh (issue 29, finding 7): tiny files that declare gigabytes are refused before
# anything is inflated, allocated or written. The bombs run under a memory ceiling in a child process.
# ---------------------------------------------------------------------------------------------------------------
_GIB = 1 << 30
_CRC_OF_A_GIB_OF_ZEROS = 0x5B64C2B0  # zlib.crc32(bytes(2**30)), written out: computing it takes seconds


def _deflated_zeros(n_bytes: int) -> bytes:
    """A raw deflate stream of ``n_bytes`` zero bytes (a multiple of 16 MiB) in a fraction of a second: one block
    compressed once and repeated (a full flush makes each copy independent of the one before), then an end block."""
    block = 1 << 24
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return chunk * (n_bytes // block) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def _set_member_fields(path, member: str, crc: int, file_size: int) -> None:
    """Mark ``member`` (written stored, holding raw deflate bytes) as deflated, with this CRC and inflated size,
    in both its local header and its central-directory entry, as a zip tool writing a bomb would."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(member).header_offset
    central = data.index(b"PK\x01\x02", data.index(member.encode()) - 46)  # its central entry (name at +46)
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 1)
    struct.pack_into("<H", data, local + 8, zipfile.ZIP_DEFLATED)
    struct.pack_into("<L", data, local + 14, crc)
    struct.pack_into("<L", data, local + 22, file_size)
    struct.pack_into("<H", data, central + 10, zipfile.ZIP_DEFLATED)
    struct.pack_into("<L", data, central + 16, crc)
    struct.pack_into("<L", data, central + 24, file_size)
    path.write_bytes(bytes(data))


def _compressed_bomb(path, numel: int, file_size: int = _GIB, crc: int = _CRC_OF_A_GIB_OF_ZEROS):
    """A 1 MB .bin whose one storage record inflates to 1 GiB of zeros; the pickle declares ``numel`` floats."""
    _write_torch_zip(path, _tensor_pickle({"w": ("FloatStorage", "0", numel, 0, (numel,), (1,))}),
                     {"0": _deflated_zeros(_GIB)})
    _set_member_fields(path, "archive/data/0", crc, file_size)
    return path


_UNDER_A_CEILING = """
import resource, sys
ceiling = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))  # address space: a MemoryError past it, never a swap
from minflaubert.checkpoints.torch_pickle import load_torch_bin
try:
    state = load_torch_bin(sys.argv[1])
except ValueError as error:
    print("refused:", error)
else:
    print("loaded", {name: array.shape for name, array in state.items()})
"""


def _load_under_a_ceiling(path, ceiling=768 << 20) -> str:
    """load_torch_bin(path) in a child whose address space is capped: its one-line verdict (or its traceback)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _UNDER_A_CEILING, str(path), str(ceiling)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_compressed_bomb_is_what_it_claims(tmp_path):
    """Control for the bombs below: the file is a valid zip of about 1 MB whose record inflates to 1 GiB."""
    path = _compressed_bomb(tmp_path / "bomb.bin", numel=1)
    assert path.stat().st_size < 1.1e6
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # (every CRC checks out: zipfile inflated the whole GiB to verify it)
        assert zf.getinfo("archive/data/0").file_size == _GIB


@pytest.mark.parametrize("numel, file_size, message", [
    (_GIB // 4, _GIB, r"tensors declare 1073741824 bytes, more than 4 times the file's \d+ bytes; the largest, "
                      r"tensor 'w', a view of shape \(268435456,\)"),
    (1, _GIB, r"record archive/data/0 is compressed and says it inflates to 1073741824 bytes, more than 4 times"),
    (1, 4, r"tensor 'w': .*record archive/data/0 is corrupt"),  # a directory that lies: inflated 4 bytes at most
], ids=["declared", "record-inflates", "record-lies-about-its-size"])
def test_a_compressed_record_never_inflates_past_the_budget(tmp_path, numel, file_size, message):
    """The issue's 1 MB file inflating to 1 GiB (2 GB peak before): refused before inflating, under 768 MB."""
    verdict = _load_under_a_ceiling(_compressed_bomb(tmp_path / "bomb.bin", numel, file_size))
    assert verdict.startswith(f"refused: {tmp_path / 'bomb.bin'}") and re.search(message, verdict), verdict


def _stride_zero_bin(path, numel: int, negative: bool = False):
    """A file of a few hundred bytes: one float, and a tensor of ``numel`` elements that all view it."""
    tensor = ("FloatStorage", "0", 1, 0, (numel,), (0,)) + (("neg",) if negative else ())
    return _write_torch_zip(path, _tensor_pickle({"w": tensor}), {"0": np.ones(1, "<f4").tobytes()})


def test_a_huge_view_of_a_tiny_storage_is_refused(tmp_path):
    """The issue's 602-byte file: a negative (10**12,) view of one float made NumPy allocate 3.6 TiB."""
    path = _stride_zero_bin(tmp_path / "view.bin", 10**12, negative=True)
    assert path.stat().st_size < 700
    verdict = _load_under_a_ceiling(path)
    assert verdict.startswith(f"refused: {path}: its tensors declare 4000000000000 bytes"), verdict
    assert "tensor 'w', a view of shape (1000000000000,)" in verdict


def test_convert_does_not_blow_a_tiny_file_up(tmp_path):
    """The issue's 585-byte .bin that convert turned into a 300 MB safetensors file: one line, nothing written."""
    folder = tmp_path / "model"
    folder.mkdir()
    _stride_zero_bin(folder / "pytorch_model.bin", 75_000_000)
    done = subprocess.run([sys.executable, "-m", "minflaubert", "convert", str(folder), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("minflaubert convert: error: ") and len(done.stderr.splitlines()) == 1
    assert "its tensors declare 300000000 bytes, more than 4 times" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["pytorch_model.bin"]


def test_a_real_checkpoint_is_well_within_the_budget():
    """Tied weights are two views of one storage: the fixture declares more than its storages hold, and loads."""
    state = load_torch_bin(TINY)
    declared = sum(array.nbytes for array in state.values())
    assert declared < TINY.stat().st_size * MAX_EXPANSION


# ---------------------------------------------------------------------------------------------------------------
# Hostile pickles: refused by name, never executed.
# ---------------------------------------------------------------------------------------------------------------
class _Reduce:
    """An object whose pickle is the call ``function(*arguments)``: the classic pickle exploit."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _hostile_payloads(sentinel):
    """(pickle bytes, name of the global it needs) pairs; every payload would create ``sentinel`` if it ran."""
    touch = f"touch {sentinel}"
    system = f"{os.system.__module__}.system"  # posix.system on Linux, nt.system on Windows
    proto0_global = b"c%s\nsystem\n(V%s\ntR." % (os.system.__module__.encode(), touch.encode())
    proto0_inst = b"(V%s\ni%s\nsystem\n." % (touch.encode(), os.system.__module__.encode())
    stack_global = b"\x80\x04Vcollections\nVOrderedDict.fromkeys\n\x93."
    return [
        (pickle.dumps(_Reduce(os.system, touch), protocol=2), system),
        (pickle.dumps({"w": _Reduce(os.system, touch)}, protocol=4), system),
        (pickle.dumps(_Reduce(builtins.eval, f"open({str(sentinel)!r}, 'w')")), "builtins.eval"),
        (pickle.dumps(_Reduce(builtins.exec, f"open({str(sentinel)!r}, 'w')")), "builtins.exec"),
        (pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(sentinel)])), "subprocess.Popen"),
        (pickle.dumps({"w": np.zeros(2)}, protocol=2), "numpy._core.multiarray._reconstruct"),
        (proto0_global, system),
        (proto0_inst, system),
        (stack_global, "collections.OrderedDict.fromkeys"),
        (b"\x80\x02ctorch._utils\n_rebuild_tensor_v3\n.", "torch._utils._rebuild_tensor_v3"),
        (b"\x80\x02ctorch\nTensor\n.", "torch.Tensor"),
    ]


def test_payloads_really_run_under_plain_pickle(tmp_path):
    """Control: the sentinel check below is meaningful, since plain pickle does run the payload."""
    sentinel = tmp_path / "SENTINEL"
    payload, _ = _hostile_payloads(sentinel)[0]
    pickle.loads(payload)
    assert sentinel.exists()


_HOSTILE_COUNT = len(_hostile_payloads("SENTINEL"))


@pytest.mark.parametrize("index", range(_HOSTILE_COUNT))
def test_hostile_pickles_are_refused_and_never_run(tmp_path, index):
    sentinel = tmp_path / "SENTINEL"
    payload, global_name = _hostile_payloads(sentinel)[index]
    path = _write_torch_zip(tmp_path / "evil.bin", payload, _FLOATS)
    with pytest.raises(UnsafeCheckpointError, match=f"names the global {global_name}[,]") as caught:
        load_torch_bin(path)
    assert isinstance(caught.value, ValueError)
    assert not sentinel.exists()


def test_hostile_global_after_valid_tensors_is_refused(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    valid = _tensor_pickle({"w": ("FloatStorage", "0", 6, 0, (6,), (1,))})
    evil = pickle.dumps(_Reduce(os.system, f"touch {sentinel}"), protocol=2)[2:-1]  # without PROTO and STOP
    payload = valid[:-2] + _unicode("x") + evil + b"u."  # one more key/value pair before SETITEMS
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_torch_bin(_write_torch_zip(tmp_path / "evil.bin", payload, _FLOATS))
    assert not sentinel.exists()


_STORAGE_ID = _tuple([_unicode("storage"), b"ctorch\nFloatStorage\n", _unicode("0"), _unicode("cpu"), _int(6)])


@pytest.mark.parametrize(
    "target",
    [_STORAGE_ID + b"Q", b"ctorch\nFloatStorage\n", b"ctorch._utils\n_rebuild_tensor_v2\n"],
    ids=["storage", "storage-type", "rebuild-function"],
)
def test_build_cannot_modify_stand_ins(tmp_path, target):
    """BUILD (``obj.__setstate__`` / ``obj.__dict__.update``) on what the pickle can reach is refused."""
    tamper = b"}" + _unicode("numel") + _int(10**9) + _unicode("numpy_code") + _unicode("O") + b"u"
    payload = b"\x80\x02" + target + b"}(" + tamper[1:] + b"b."  # the target, a dict state, BUILD
    with pytest.raises(UnsafeCheckpointError, match="BUILD"):
        load_torch_bin(_write_torch_zip(tmp_path / "evil.bin", payload, _FLOATS))
    _assert_simple_values(load_torch_bin(_simple_bin(tmp_path / "good.bin")))  # nothing was poisoned


# ---------------------------------------------------------------------------------------------------------------
# Fuzzing: damaged files only ever raise ValueError or OSError.
# ---------------------------------------------------------------------------------------------------------------
def _load_or_clean_error(path):
    try:
        load_torch_bin(path)
    except (ValueError, OSError):
        pass


_flips = st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=8)


@given(flips=_flips, cut=st.one_of(st.none(), st.integers(0, 10**9)))
def test_fuzzed_file_bytes(tmp_path_factory, flips, cut):
    data = bytearray(TINY.read_bytes())
    for position, xor in flips:
        data[position % len(data)] ^= xor
    path = tmp_path_factory.mktemp("fuzz") / "m.bin"
    path.write_bytes(bytes(data[: None if cut is None else cut % (len(data) + 1)]))
    _load_or_clean_error(path)


@given(flips=_flips, cut=st.one_of(st.none(), st.integers(0, 10**9)))
def test_fuzzed_pickle_in_a_valid_zip(tmp_path_factory, flips, cut):
    """Flips inside data.pkl (re-zipped, so the CRC is right and the unpickler really sees them)."""
    with zipfile.ZipFile(TINY) as zf:
        records = {name: zf.read(name) for name in zf.namelist()}
    data = bytearray(records["tiny_state_dict/data.pkl"])
    for position, xor in flips:
        data[position % len(data)] ^= xor
    records["tiny_state_dict/data.pkl"] = bytes(data[: None if cut is None else cut % (len(data) + 1)])
    path = tmp_path_factory.mktemp("fuzz") / "m.bin"
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in records.items():
            zf.writestr(name, raw)
    _load_or_clean_error(path)


# ---------------------------------------------------------------------------------------------------------------
# Against real torch.save files, read where torch cannot be imported.
# ---------------------------------------------------------------------------------------------------------------
_LOAD_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from minflaubert.checkpoints.torch_pickle import load_torch_bin
shared = {}
for source, target in json.loads(sys.argv[1]):
    state = load_torch_bin(source)
    np.savez(target, **state)
    if "pred_layer.proj.weight" in state:
        shared[source] = bool(np.shares_memory(state["pred_layer.proj.weight"], state["transformer.embeddings.weight"]))
print(json.dumps(shared))
"""


def _load_in_torch_free_subprocess(paths):
    pairs = [(str(path), str(path.with_suffix(".npz"))) for path in paths]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_TORCH, json.dumps(pairs)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return [dict(np.load(target)) for _, target in pairs], json.loads(done.stdout)


def _awkward_tensors(torch):
    base = torch.randn(5, 6)
    complex_values = torch.complex(torch.randn(4), torch.randn(4))
    return OrderedDict(
        [
            ("base", base),
            ("transposed", base.t()),
            ("offset_slice", base[2:, 1:4]),
            ("every_other", base[:, ::2]),
            ("expanded", torch.randn(3, 1).expand(3, 4)),
            ("tied", base),
            ("half", torch.randn(3, 2).half()),
            ("bfloat16", torch.randn(7).bfloat16()),
            ("double", torch.randn(2, 2, dtype=torch.float64)),
            ("position_ids", torch.arange(64).expand((1, -1))),
            ("int32", torch.arange(-3, 3, dtype=torch.int32)),
            ("int8", torch.arange(-3, 3, dtype=torch.int8)),
            ("uint8", torch.arange(6, dtype=torch.uint8)),
            ("bool", torch.randn(4) > 0),
            ("scalar", torch.tensor(2.5)),
            ("empty", torch.empty(0, 3)),
            ("conjugate", complex_values.conj()),
            ("negative", torch._neg_view(torch.randn(3))),
        ]
    )


def _reference(torch, tensor):
    """What the reader must return: the tensor's values, with bfloat16 widened to float32."""
    tensor = tensor.detach().resolve_conj().resolve_neg()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


_MODEL_CLASSES = ["FlaubertModel", "FlaubertWithLMHeadModel", "FlaubertForSequenceClassification",
                  "FlaubertForTokenClassification", "FlaubertForQuestionAnswering",
                  "FlaubertForQuestionAnsweringSimple", "FlaubertForMultipleChoice"]


def test_torch_saved_files_load_without_torch(tmp_path, torch, transformers):
    torch.manual_seed(0)
    config = transformers.FlaubertConfig(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4,
                                         max_position_embeddings=64)
    states = {name: getattr(transformers, name)(config).state_dict() for name in _MODEL_CLASSES}
    states["awkward"] = _awkward_tensors(torch)
    paths = []
    for name, state in states.items():
        paths.append(tmp_path / f"{name}.bin")
        torch.save(state, paths[-1])

    loaded_states, lm_head_shares_embeddings = _load_in_torch_free_subprocess(paths)

    assert list(lm_head_shares_embeddings.values()) == [True]  # the tied LM projection, stored once
    for (name, state), loaded in zip(states.items(), loaded_states):
        assert list(loaded) == list(state), name
        for key, tensor in state.items():
            expected = _reference(torch, tensor)
            assert loaded[key].dtype == expected.dtype and loaded[key].shape == expected.shape, (name, key)
            np.testing.assert_array_equal(loaded[key], expected, err_msg=f"{name}: {key}")


def test_torch_legacy_file_is_refused(tmp_path, torch):
    path = tmp_path / "legacy.bin"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy"):
        load_torch_bin(path)

"""Read a PyTorch ``pytorch_model.bin`` into NumPy arrays, without PyTorch and without running its pickle.

(One module of a little over 400 lines: the zip layout, the storages and the restricted unpickler make one safety
argument, read top to bottom, and much of the length is the explanation below.)

What ``torch.save`` writes
==========================
Since PyTorch 1.6, ``torch.save(model.state_dict(), "pytorch_model.bin")`` writes a **zip file** (every member
``ZIP_STORED``, i.e. uncompressed, and padded so each member's data starts on a 64-byte boundary). All members sit
in one top folder, the *archive name* (``archive/`` for Hugging Face checkpoints, the file's stem otherwise)::

    archive/data.pkl        a pickle of the state dict; tensors appear in it only as recipes (see below)
    archive/data/0          the raw bytes of storage "0": a flat run of elements, in the file's byte order
    archive/data/1          ... one record per storage (tensors that share memory share one storage)
    archive/byteorder       "little" or "big" (absent in old files: little)
    archive/version         the format version, e.g. "3" (the layout read here has not changed since 1.6)

Inside ``data.pkl`` a tensor is pickled as a call: ``torch._utils._rebuild_tensor_v2(storage, storage_offset,
size, stride, requires_grad, backward_hooks[, metadata])``. The ``storage`` argument is not pickled inline: it is a
*persistent id*, the tuple ``('storage', torch.FloatStorage, '0', 'cpu', 12)`` = (tag, storage type i.e. dtype,
key of the ``data/<key>`` record, device it was saved from, number of elements). Pickle hands such ids to the
unpickler's ``persistent_load``, which must turn them into the storage object. So a tensor is "elements
``storage_offset``, ``storage_offset + stride[0]``, ... of storage 0, arranged as ``size``": exactly a NumPy
strided view, ``np.lib.stride_tricks.as_strided`` over the storage with strides multiplied by the item size.

Why a restricted unpickler
==========================
Unpickling calls whatever callable the pickle names (``GLOBAL 'posix system'`` + ``REDUCE`` runs a shell command),
so ``pickle.load`` on a downloaded checkpoint runs the downloader's code. Here ``find_class``, the only way a pickle
can name a callable, answers from a short allow-list: ``collections.OrderedDict``, the tensor/parameter rebuild
functions and the ``torch.*Storage`` dtype markers, each mapped to a stand-in defined in this module (torch is never
imported). Any other name raises :class:`UnsafeCheckpointError` before anything it names could run.

Memory
======
A storage stored uncompressed is not copied: the file is memory-mapped once and each storage is a slice of it, so
the returned arrays are read-only views into the file (the OS pages weights in as they are used). Conversions make
copies: bfloat16 (NumPy has no such type) becomes float32, big-endian data is swapped to native order.

A hostile file costs what it weighs
===================================
A few hundred bytes of pickle can *declare* terabytes: a view of shape (10**12,) with stride 0 over a one-element
storage, or a deflated record that inflates a thousandfold. Each would cost nothing until something copies it (a
"negative" bit, a conversion to safetensors, a cast to float32). So the tensors are first unpickled as recipes
(:class:`_TensorRecipe`: storage, offset, size, stride), their geometry is checked, and the bytes they declare are
added up, every view counted in full, **before any storage is read**: at most :data:`MAX_EXPANSION` times the
file's size (a real checkpoint declares about 1.4 times: tied weights are two views of one storage). A compressed
record (torch writes none, but reads them) may inflate to that much at most, and is read in bounded steps.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import reprlib
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["MAX_EXPANSION", "UnsafeCheckpointError", "load_torch_bin"]

# The tensors of a checkpoint may declare at most this many bytes per byte of the file (see "A hostile file costs
# what it weighs" above).
MAX_EXPANSION = 4


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle names a global outside the tensor-state-dict allow-list; nothing was executed."""


def load_torch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``torch.save``-d state dict as ``{name: array}``, names exactly as in the file.

    Raises :class:`UnsafeCheckpointError` if the pickle names anything but tensor-rebuilding globals,
    ``ValueError`` if the file is not a (complete, consistent) torch zip checkpoint or declares more than
    :data:`MAX_EXPANSION` times its size in tensors, ``OSError`` if it cannot be read.
    """
    path = os.fspath(path)
    with _open_zip(path) as zip_file:
        archive = _TorchArchive(path, zip_file)
        recipes = _checked_state_dict(_unpickle_state(archive.record(archive.prefix + "data.pkl"), archive))
        declared = {name: _for_tensor(path, name, recipe.check) for name, recipe in recipes.items()}
        _check_declared_bytes(declared, recipes, archive)
        return {name: _for_tensor(path, name, recipe.build) for name, recipe in recipes.items()}


class _Sealed:
    """Base of every object a pickle can get hold of here: refuses pickle's BUILD opcode.

    subtle: BUILD calls ``obj.__setstate__(state)`` or, without one, writes ``state`` straight into ``obj.__dict__``
    (bypassing even a frozen dataclass). On our stand-ins that would rewrite a storage's size after it was checked,
    or poison a module-level storage type for every later load in this process.
    """

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"the pickle tries to modify a {type(self).__name__} (BUILD opcode); "
                                    "torch never writes that (possibly malicious; nothing was executed)")


# ---------------------------------------------------------------------------------------------------------------
# 1. Storage types: the dtype of each torch.*Storage class named in the pickle.
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StorageType(_Sealed):
    """Stand-in for a ``torch.<Name>Storage`` class: how to read its elements with NumPy."""

    name: str
    numpy_code: str  # NumPy dtype code, without byte order

    @property
    def is_bfloat16(self) -> bool:
        """bfloat16 has no NumPy dtype: its elements are widened to float32 when read."""
        return self.name == "BFloat16Storage"


_STORAGE_TYPES = {
    storage_type.name: storage_type
    for storage_type in (
        _StorageType("DoubleStorage", "f8"),
        _StorageType("FloatStorage", "f4"),
        _StorageType("HalfStorage", "f2"),
        _StorageType("BFloat16Storage", "u2"),  # subtle: NumPy has no bfloat16; read the 16 raw bits, widen later
        _StorageType("LongStorage", "i8"),
        _StorageType("IntStorage", "i4"),
        _StorageType("ShortStorage", "i2"),
        _StorageType("CharStorage", "i1"),
        _StorageType("ByteStorage", "u1"),
        _StorageType("BoolStorage", "?"),
        _StorageType("ComplexFloatStorage", "c8"),
        _StorageType("ComplexDoubleStorage", "c16"),
    )
}


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift its 16 bits up and reinterpret (exact, no rounding)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _decode_elements(raw: np.ndarray, storage_type: _StorageType, byteorder: str) -> np.ndarray:
    """Interpret a storage's raw bytes as a 1-D array of its elements, in native byte order."""
    on_disk = np.dtype(storage_type.numpy_code).newbyteorder("<" if byteorder == "little" else ">")
    elements = raw.view(on_disk)
    if not on_disk.isnative:
        elements = elements.astype(on_disk.newbyteorder("="))  # subtle: swaps each element (each complex half)
    if storage_type.is_bfloat16:
        elements = _bfloat16_to_float32(elements)
    return elements


# ---------------------------------------------------------------------------------------------------------------
# 2. The zip archive: its records, and the bytes of each storage (memory-mapped when stored uncompressed).
# ---------------------------------------------------------------------------------------------------------------
# The legacy (pre-1.6) format starts with a pickled magic number: LONG1 opcode, length 10, the number's bytes.
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

# What zipfile/zlib raise on a damaged archive. zipfile reports damage in many ways (BadZipFile, struct/zlib
# errors, EOFError, RuntimeError for encryption, OSError for a seek before the start); all mean "corrupt" here,
# because the file itself was opened and read successfully a moment before.
_ZIP_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, RuntimeError,
               NotImplementedError, OverflowError, ValueError, OSError)

# torch writes ZIP_STORED; a re-zipped checkpoint may be deflated. Anything else is damage, not a checkpoint.
_READABLE_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

# A zip "local file header" precedes each member's data: signature, 5 shorts, crc and two sizes, 2 name lengths.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"


def _open_zip(path: str) -> zipfile.ZipFile:
    """Open ``path`` as a zip, or explain why it is not a torch zip checkpoint."""
    with open(path, "rb") as file:
        head = file.read(32)
    if _LEGACY_MAGIC in head:
        raise ValueError(f"{path}: legacy (pre-1.6) torch format not supported; re-save or convert it with "
                         "torch>=1.6: torch.save(torch.load(old, weights_only=True), new)")
    try:
        return zipfile.ZipFile(path)
    except _ZIP_DAMAGE as err:
        raise ValueError(f"{path}: not a readable torch checkpoint (a torch.save zip file): {err}") from err


class _TorchArchive:
    """An open torch zip: the archive folder name, the byte order, and the bytes of each record."""

    def __init__(self, path: str, zip_file: zipfile.ZipFile):
        self.path = path
        self.zip = zip_file
        self.names = set(zip_file.namelist())
        self.prefix = self._find_prefix()
        self.byteorder = self._read_byteorder()

    def _find_prefix(self) -> str:
        """The top folder holding ``data.pkl``: like torch, take the folder of the first member."""
        names = self.zip.namelist()
        prefix = names[0].split("/", 1)[0] + "/" if names else ""
        if prefix + "data.pkl" not in names:
            raise ValueError(f"{self.path}: no data.pkl in the zip; not a torch.save checkpoint")
        return prefix

    def _read_byteorder(self) -> str:
        name = self.prefix + "byteorder"
        if name not in self.names:
            return "little"  # files written before the record existed (torch < 1.10) were little-endian
        byteorder = self.record(name)
        if byteorder not in (b"little", b"big"):
            raise ValueError(f"{self.path}: unknown byte order {byteorder[:20]!r} in {name}")
        return byteorder.decode()

    @cached_property
    def budget(self) -> int:
        """The most bytes this file's tensors, or any of its records inflated, may take: MAX_EXPANSION x its size."""
        return MAX_EXPANSION * os.path.getsize(self.path)

    def record(self, name: str) -> bytes:
        """A member's whole content, read (and CRC-checked) by zipfile; a compressed one inflates within budget."""
        info = self.zip.getinfo(name)
        if info.compress_type not in _READABLE_COMPRESSIONS:
            raise ValueError(f"{self.path}: record {name} uses zip compression method {info.compress_type}, "
                             "not stored or deflated (corrupt file?)")
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > self.budget:
            raise ValueError(f"{self.path}: record {name} is compressed and says it inflates to {info.file_size} "
                             f"bytes, more than {MAX_EXPANSION} times the file's size (a zip bomb?)")
        try:
            # subtle: read(size), not read(): zipfile then inflates in steps of at most `size` bytes and stops
            # there, where read() inflates up to 1 GiB per step whatever size the zip directory claims.
            with self.zip.open(info) as member:
                return member.read(info.file_size)
        except _ZIP_DAMAGE as err:
            raise ValueError(f"{self.path}: record {name} is corrupt: {err}") from err

    def storage_bytes(self, key: str, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` bytes of record ``data/<key>`` as a uint8 array (a view of the file if possible)."""
        name = f"{self.prefix}data/{key}"
        if name not in self.names:
            raise ValueError(f"{self.path}: the pickle refers to storage {reprlib.repr(key)}, but record "
                             f"{reprlib.repr(name)} is missing")
        info = self.zip.getinfo(name)
        if info.file_size < nbytes:
            raise ValueError(f"{self.path}: record {name} holds {info.file_size} bytes, the pickle needs {nbytes}")
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:  # uncompressed, not encrypted
            start = self._data_offset(info)
            return self._file_map[start : start + nbytes]
        raw = np.frombuffer(self.record(name), np.uint8)[:nbytes]
        if len(raw) < nbytes:  # (a deflate stream that ends early, under a CRC that matches what it holds)
            raise ValueError(f"{self.path}: record {name} inflates to {len(raw)} bytes, the pickle needs {nbytes}")
        return raw

    @cached_property
    def _file_map(self) -> np.ndarray:
        """The whole file, memory-mapped read-only, as plain uint8 (slices of it share the one mapping)."""
        return np.asarray(np.memmap(self.path, dtype=np.uint8, mode="r"))

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes start: after its local header, whose name/extra lengths we must read.

        subtle: the central directory's ``extra`` may differ from the local header's (torch puts the 64-byte
        alignment padding in the local extra field), so only the local header gives the true offset.
        """
        header_end = info.header_offset + _LOCAL_HEADER.size
        header = bytes(self._file_map[max(info.header_offset, 0) : header_end])  # subtle: no wrap-around
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_HEADER_SIGNATURE:
            raise ValueError(f"{self.path}: corrupt zip, bad local header for {info.filename}")
        *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        start = header_end + name_length + extra_length
        if start + info.file_size > len(self._file_map):
            raise ValueError(f"{self.path}: truncated file, {info.filename} runs past the end")
        return start


# ---------------------------------------------------------------------------------------------------------------
# 3. Storages and tensors: the stand-ins that the allow-listed globals resolve to.
# ---------------------------------------------------------------------------------------------------------------
class _Storage(_Sealed):
    """A storage named by a persistent id; its bytes are fetched and decoded the first time a tensor uses it."""

    def __init__(self, archive: _TorchArchive, storage_type: _StorageType, key: str, numel: int):
        self.archive = archive
        self.storage_type = storage_type
        self.key = key
        self.numel = numel

    @cached_property
    def elements(self) -> np.ndarray:
        """The storage's elements as a flat array, read from the archive once."""
        itemsize = np.dtype(self.storage_type.numpy_code).itemsize
        raw = self.archive.storage_bytes(self.key, self.numel * itemsize)
        return _decode_elements(raw, self.storage_type, self.archive.byteorder)


_MAX_INDEX = 2**63 - 1  # NumPy shapes and strides are C int64


def _checked_geometry(numel: int, offset, size, stride) -> tuple[int, tuple, tuple]:
    """Validate a tensor's (offset, size, stride) against its storage's declared length (checked against the
    record when it is read); return them for ``as_strided``."""
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise ValueError(f"tensor size {reprlib.repr(size)} and stride {reprlib.repr(stride)} do not match")
    if not all(isinstance(n, int) and 0 <= n <= _MAX_INDEX for n in (offset, *size, *stride)):
        raise ValueError("tensor offset/size/stride must be non-negative integers: "
                         + reprlib.repr((offset, size, stride)))
    # subtle: a dimension of length 1 never steps, so its stride is irrelevant (torch writes anything there);
    # zeroing it keeps the bounds check below exact and the byte strides from overflowing.
    stride = tuple(step if length > 1 else 0 for length, step in zip(size, stride))
    last_element = offset + sum((length - 1) * step for length, step in zip(size, stride))
    if 0 not in size and last_element >= numel:
        raise ValueError(f"tensor (offset {offset}, size {reprlib.repr(size)}, stride {reprlib.repr(stride)}) "
                         f"reaches element {last_element} of a storage of {numel}")
    return offset, size, stride


class _TensorRecipe(_Sealed):
    """What a rebuild call in the pickle stands for: a tensor not read yet, checked (``check``) before it is built."""

    def __init__(self, storage, offset, size, stride, metadata=None):
        if not isinstance(storage, _Storage):
            raise ValueError(f"tensor rebuilt from {type(storage).__name__}, not from a storage")
        self.storage, self.geometry, self.metadata = storage, (offset, size, stride), metadata

    def check(self) -> int:
        """Check the geometry against the storage's declared length -> the bytes the tensor declares, every
        element counted (Python ints: no overflow). Reads nothing."""
        self.geometry = _checked_geometry(self.storage.numel, *self.geometry)
        return math.prod(self.geometry[1]) * np.dtype(self.storage.storage_type.numpy_code).itemsize

    def build(self) -> np.ndarray:
        """Read the storage and return the tensor (a read-only view unless its metadata asks for a copy)."""
        return _apply_metadata(_strided_view(self.storage.elements, *self.geometry), self.metadata)


def _strided_view(elements: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    """The tensor as a read-only NumPy view of its storage's elements (geometry already checked)."""
    if 0 in size:
        return np.empty(size, elements.dtype)
    # subtle: as_strided trusts its arguments and would read outside the buffer; _checked_geometry made them safe.
    return np.lib.stride_tricks.as_strided(elements[offset:], shape=size,
                                           strides=[step * elements.itemsize for step in stride], writeable=False)


def _apply_metadata(array: np.ndarray, metadata) -> np.ndarray:
    """Resolve torch's lazy "conjugate" / "negative" view bits, the only tensor metadata torch records."""
    if not metadata:
        return array
    if not isinstance(metadata, dict) or not set(metadata) <= {"conj", "neg"}:
        raise ValueError(f"unsupported tensor metadata {reprlib.repr(metadata)}")
    if metadata.get("conj"):
        array = np.conj(array)
    if metadata.get("neg"):
        array = np.negative(array)
    return array


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for ``torch._utils._rebuild_tensor`` (the pre-1.3 recipe)."""
    return _TensorRecipe(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; autograd fields (requires_grad, hooks) mean nothing here."""
    return _TensorRecipe(storage, storage_offset, size, stride, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """Stand-in for ``torch._utils._rebuild_parameter[_with_state]``: an ``nn.Parameter`` is just its tensor."""
    if not isinstance(data, _TensorRecipe):
        raise ValueError(f"parameter rebuilt from {type(data).__name__}, not from a tensor")
    return data


# ---------------------------------------------------------------------------------------------------------------
# 4. The restricted unpickler.
# ---------------------------------------------------------------------------------------------------------------
class _StandIn(_Sealed):
    """What an allow-listed torch function resolves to: our function, behind a ``_Sealed`` front."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,  # a built-in type: pickle cannot modify it
    ("torch._utils", "_rebuild_tensor"): _StandIn(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _StandIn(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _StandIn(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _StandIn(_rebuild_parameter),
    **{("torch", name): storage_type for name, storage_type in _STORAGE_TYPES.items()},
}

# What the C unpickler raises on malformed opcode arguments (e.g. a stand-in called with the wrong arguments).
_PICKLE_DAMAGE = (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
                  UnicodeDecodeError)


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that can only build dicts of tensors: every global goes through the allow-list."""

    def __init__(self, data: bytes, archive: _TorchArchive):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        # subtle: pickle resolves GLOBAL, STACK_GLOBAL, INST and the copyreg EXT opcodes all through find_class,
        # so refusing here refuses every way a pickle can name a callable. Exact (module, name) pairs only:
        # no dotted-name lookups such as "OrderedDict.__init__".
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load {self.archive.path}: its pickle names the global {module}.{name}, which is not "
                "part of a tensor state dict (possibly malicious; nothing was executed)") from None

    def persistent_load(self, pid):
        """``('storage', storage_type, key, location, numel)`` -> a lazy :class:`_Storage` (one per key)."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {reprlib.repr(pid)} (expected a torch storage)")
        _, storage_type, key, _location, numel = pid  # location ("cpu", "cuda:0") is moot: NumPy lives on the CPU
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and isinstance(numel, int)
                and 0 <= numel <= _MAX_INDEX):
            raise ValueError(f"malformed storage reference {reprlib.repr(pid)}")
        storage = self.storages.setdefault(key, _Storage(self.archive, storage_type, key, numel))
        if (storage.storage_type, storage.numel) != (storage_type, numel):
            raise ValueError(f"storage {reprlib.repr(key)} is referenced with two different types or sizes")
        return storage


def _check_pickle_framing(data: bytes, path: str) -> None:
    """Walk the opcodes without executing any, so malformed data fails here with a clear ValueError.

    subtle: the C unpickler allocates a counted string's declared length before reading it, so a corrupt
    length field could ask for exabytes; pickletools checks every length against the bytes that remain.
    """
    try:
        for _ in pickletools.genops(data):
            pass
    except (ValueError, *_PICKLE_DAMAGE) as err:
        raise ValueError(f"{path}: data.pkl is corrupt: {err}") from err


def _unpickle_state(data: bytes, archive: _TorchArchive):
    """Unpickle ``data.pkl`` with the restricted unpickler, reporting damage as ValueError."""
    _check_pickle_framing(data, archive.path)
    try:
        return _StateDictUnpickler(data, archive).load()
    except _PICKLE_DAMAGE as err:
        raise ValueError(f"{archive.path}: data.pkl is corrupt: {type(err).__name__}: {err}") from err


def _checked_state_dict(state) -> dict[str, _TensorRecipe]:
    """The unpickled object must be a flat ``{str: tensor}`` dict, i.e. a ``state_dict()``."""
    if not isinstance(state, dict):
        raise ValueError(f"the checkpoint holds a {type(state).__name__}, not a state dict of tensors")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRecipe):
            raise ValueError(f"the checkpoint is not a state dict of tensors: entry {reprlib.repr(name)} "
                             f"is a {type(value).__name__}")
    return dict(state)


def _check_declared_bytes(declared: dict[str, int], recipes: dict[str, _TensorRecipe], archive) -> None:
    """Refuse a file whose tensors declare more bytes than its budget, before a single storage is read."""
    if sum(declared.values()) > archive.budget:
        largest = max(declared, key=declared.get)
        raise ValueError(f"{archive.path}: its tensors declare {sum(declared.values())} bytes, more than "
                         f"{MAX_EXPANSION} times the file's {archive.budget // MAX_EXPANSION} bytes; the largest, "
                         f"tensor {largest!r}, a view of shape {reprlib.repr(recipes[largest].geometry[1])}, "
                         f"declares {declared[largest]} (a hostile file?)")


def _for_tensor(path: str, name: str, step):
    """Run one tensor's ``check`` or ``build``; a ValueError then names the file and the tensor."""
    try:
        return step()
    except ValueError as err:
        raise ValueError(f"{path}: tensor {name!r}: {str(err).removeprefix(path + ': ')}") from err

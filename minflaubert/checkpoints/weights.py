"""Checkpoint files -> NumPy arrays, and back.

A checkpoint folder written by transformers' ``save_pretrained`` holds ``config.json`` and the weights in one of:

* ``model.safetensors``: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
  dtype, shape and byte range, then the raw bytes. We memory-map the file and hand out NumPy views into it, so
  loading copies nothing and only the pages a forward pass touches are ever read. The header is checked as
  strictly as the ``safetensors`` library checks it (``_check_layout``), so that a file means the same tensors here
  as in every other tool.
* ``model.safetensors.index.json`` + shards: the index's ``weight_map`` says which shard holds which tensor.
* ``pytorch_model.bin``: a zip of pickles, read without torch by ``torch_pickle.py``.

The names are transformers' (``transformer.attentions.0.q_lin.weight``...). ``unflatten`` turns them into the
nested dictionaries the layer functions take, after ``check_state_dict`` has compared every shape with the config.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from .json_files import parse_json, read_json_object

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
TORCH_BIN_NAME = "pytorch_model.bin"
TORCH_BIN_INDEX_NAME = "pytorch_model.bin.index.json"

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,  # bf16 is widened below
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's limit: a larger header is refused, not read


# ------------------------------------------------------------------------------------------------ reading
def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Memory-map one .safetensors file: {name: array view}. Raises ValueError on a malformed file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path} is not a safetensors file: too short")
        header_len = int.from_bytes(prefix, "little")
        if header_len > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: safetensors header too large ({header_len} bytes; the format allows "
                             f"{MAX_HEADER_BYTES})")
        if header_len > size - 8:
            raise ValueError(f"{path} is truncated or not a safetensors file (header of {header_len} bytes)")
        header = parse_json(file.read(header_len), f"{path}: its safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header: not a JSON object")
    _check_metadata(path, header.pop("__metadata__", None))
    entries = {name: _checked_entry(path, name, entry) for name, entry in header.items()}
    data_start = 8 + header_len
    _check_layout(path, entries, size - data_start)
    buffer = np.memmap(path, dtype=np.uint8, mode="r") if size > data_start else np.zeros(0, np.uint8)
    return {name: _tensor_view(buffer, data_start, *entry) for name, entry in entries.items()}


def _check_metadata(path, metadata) -> None:
    """``__metadata__`` is absent, null, or an object of strings (``{"format": "pt"}``), as the library requires."""
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(value, str) for value in metadata.values())):
        raise ValueError(f"{path}: corrupt safetensors header: __metadata__ must map names to strings, got "
                         f"{metadata!r}"[:500])


def _checked_entry(path, name, entry) -> tuple[str, list[int], int, int]:
    """A header entry -> (dtype name, shape, first byte, end byte), every field checked before NumPy sees it:
    a corrupt header must give a ValueError, never an overflow, a wrapped-around byte count or a view of the
    wrong bytes."""
    def is_count(n):
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    dtype_name, shape, offsets = (entry.get(key) for key in ("dtype", "shape", "data_offsets")) \
        if isinstance(entry, dict) else (None, None, None)
    if (not isinstance(dtype_name, str) or dtype_name not in _DTYPES or not isinstance(shape, list)
            or len(shape) > 32 or not all(map(is_count, shape))
            or not isinstance(offsets, list) or len(offsets) != 2 or not all(map(is_count, offsets))):
        raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}"[:500])
    begin, end = offsets
    n_bytes = math.prod(shape) * np.dtype(_DTYPES[dtype_name]).itemsize  # Python ints: no overflow
    if end - begin != n_bytes:
        raise ValueError(f"{path}: tensor {name!r} (shape {shape}, bytes {begin}..{end}) does not fit the file: "
                         f"a {dtype_name} tensor of that shape takes {n_bytes} bytes")
    return dtype_name, shape, begin, end


def _check_layout(path, entries: dict, data_bytes: int) -> None:
    """The tensors' byte ranges must tile the data exactly: sorted by offset, each starts where the one before
    ends, the first at 0, the last at the end of the file. The ``safetensors`` library refuses any other file.

    Why be as strict: overlapping tensors would let one byte be two weights, and a hole or bytes after the last
    tensor are data that no tool shows, so one file could hold different models for different readers.
    """
    end_so_far = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != end_so_far:
            what = "overlaps the tensor before it" if begin < end_so_far else "leaves a hole after the one before it"
            raise ValueError(f"{path}: invalid offset for tensor {name!r}: its bytes start at {begin} where the "
                             f"tensors before it end at {end_so_far} (it {what})")
        end_so_far = end
    if end_so_far != data_bytes:
        problem = "bytes after the last tensor" if end_so_far < data_bytes else "the file is truncated"
        raise ValueError(f"{path}: the tensors do not fit the file: they cover {end_so_far} bytes of data, the file "
                         f"holds {data_bytes} ({problem})")


def _tensor_view(buffer, data_start, dtype_name, shape, begin, end) -> np.ndarray:
    """A checked tensor as a read-only view into the memory map (bfloat16 widened to a float32 copy)."""
    array = buffer[data_start + begin:data_start + end].view(_DTYPES[dtype_name]).reshape(shape)
    if dtype_name == "BF16":  # bfloat16 is the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def load_state_dict(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder, whichever file layout it uses."""
    from .atomic import readable_folder

    folder = readable_folder(folder)  # (a save a crash interrupted after its commit point is finished first)
    if not folder.is_dir():
        raise OSError(f"checkpoint folder not found: {folder}")
    if (folder / SAFETENSORS_NAME).is_file():
        return read_safetensors(folder / SAFETENSORS_NAME)
    if (folder / SAFETENSORS_INDEX_NAME).is_file():
        return _read_sharded(folder / SAFETENSORS_INDEX_NAME, read_safetensors)
    state = read_torch_checkpoint(folder)
    if state is None:
        raise OSError(f"no weights in {folder}: expected {SAFETENSORS_NAME}, {SAFETENSORS_INDEX_NAME} or "
                      f"{TORCH_BIN_NAME}")
    return state


def read_torch_checkpoint(folder: Path) -> dict[str, np.ndarray] | None:
    """The tensors of ``pytorch_model.bin`` (or its shards), read without torch; None if the folder has neither."""
    from .torch_pickle import load_torch_bin  # only needed for .bin checkpoints

    if (folder / TORCH_BIN_NAME).is_file():
        return load_torch_bin(folder / TORCH_BIN_NAME)
    if (folder / TORCH_BIN_INDEX_NAME).is_file():
        return _read_sharded(folder / TORCH_BIN_INDEX_NAME, load_torch_bin)
    return None


def read_weight_map(index_path: Path) -> dict[str, str]:
    """A shard index's ``weight_map``, ``{tensor name: shard file name}``, checked: ValueError naming the file."""
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index_path} is not a valid shard index: its weight_map must be an object "
                         f"{{tensor name: shard file}}, got {weight_map!r}"[:500])
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise ValueError(f"{index_path} is not a valid shard index: weight_map gives tensor {name!r} the shard "
                             f"{shard!r}, not a file name"[:500])
    return weight_map


def _read_sharded(index_path: Path, read) -> dict[str, np.ndarray]:
    weight_map = read_weight_map(index_path)
    state = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if Path(shard).name != shard or not shard_path.is_file():
            raise OSError(f"{index_path} lists shard {shard!r}, which is not a file in {index_path.parent}")
        state.update(read(shard_path))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise ValueError(f"{index_path}: tensors {missing[:5]} are listed but absent from their shards")
    return state


# ------------------------------------------------------------------------------------------------ writing
def save_state_dict(state: dict[str, np.ndarray], folder: str | os.PathLike) -> None:
    """Write ``model.safetensors`` in the layout transformers reads (metadata format "pt").

    subtle: written under a temporary name, then renamed (``atomic.atomic_file``). Overwriting in place would
    truncate the very file that the arrays of a model loaded from this folder are memory-mapped from (reading them
    would then crash); a rename leaves the old file alive for those maps, and never shows a half-written file
    under the final name.
    """
    from .atomic import atomic_file

    with atomic_file(Path(folder) / SAFETENSORS_NAME) as tmp:
        write_safetensors(state, tmp, progress=False)


# ----------------------------------------------------------------------------------------- names and shapes
def check_state_dict(state: dict[str, np.ndarray], expected: dict[str, tuple], prefix: str = "transformer.",
                     ignored_suffixes=("position_ids",)) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Match checkpoint names to the expected ones and check every shape.

    ``expected`` maps our names (``embeddings.weight``, ``pred_layer.proj.bias``...) to shapes. Encoder names carry
    ``prefix`` in a checkpoint saved from a head model and none in one saved from the bare encoder: it is dropped.
    Returns (float32 arrays by our names, missing names, unexpected checkpoint names); a wrong shape raises
    ValueError naming the key.
    """
    found, unexpected = {}, []
    for key, array in state.items():
        name = key.removeprefix(prefix)
        if name not in expected:
            if not key.endswith(ignored_suffixes):
                unexpected.append(key)
            continue
        if tuple(array.shape) != tuple(expected[name]):
            raise ValueError(f"checkpoint tensor {key!r} has shape {tuple(array.shape)}, but the config asks for "
                             f"{tuple(expected[name])}: the checkpoint does not match its config.json")
        # subtle: float32 arrays stay views into the memory map; only other dtypes are converted (copied).
        found[name] = array if array.dtype == np.float32 else array.astype(np.float32)
    missing = [name for name in expected if name not in found]
    return found, missing, unexpected


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """{"attentions.0.q_lin.weight": w} -> {"attentions": {0: {"q_lin": {"weight": w}}}}."""
    tree: dict = {}
    for name, array in flat.items():
        node = tree
        *parents, leaf = [int(part) if part.isdigit() else part for part in name.split(".")]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = array
    return tree


def warn_about_keys(kind: str, missing: list[str], unexpected: list[str], source="the checkpoint") -> None:
    """Say which weights the checkpoint lacked (drawn at random) or had in excess, in transformers' words."""
    if missing:
        warnings.warn(f"Some weights of {kind} were not initialized from the model checkpoint at {source} and are "
                      f"newly initialized: {missing}\nYou should probably TRAIN this model on a down-stream task to "
                      "be able to use it for predictions and inference.", stacklevel=3)
    if unexpected:
        shown = ", ".join(unexpected[:10]) + (" ..." if len(unexpected) > 10 else "")
        warnings.warn(f"{kind}: checkpoint weights not used by this model: {shown}", stacklevel=3)


# ------------------------------------------------------------------------------------------------ converting
def convert_checkpoint(folder: str | os.PathLike, output: str | os.PathLike | None = None, overwrite: bool = False,
                       progress: bool = True) -> Path:
    """``pytorch_model.bin`` (or its shards) -> ``model.safetensors``, without torch. Returns the new file's path.

    Why convert when ``from_pretrained`` reads ``.bin`` files anyway: a safetensors file is memory-mapped in
    milliseconds and holds no pickle at all, so it is both faster to open and safe to share. The tensors are read
    by ``torch_pickle`` (names, dtypes and values unchanged), written into a new folder beside ``output``, read
    back with the ``safetensors`` library and compared bit for bit, and only then moved in with the config and
    tokenizer files (``atomic.atomic_folder``): a crash or a bad write never leaves a ``model.safetensors`` that
    looks finished, nor one beside the wrong config. ``output`` (default: ``folder``) also gets the config and
    tokenizer; the ``.bin`` stays (loaders read ``model.safetensors`` first).
    """
    import shutil

    from .atomic import atomic_folder

    folder = Path(folder)
    output = Path(output) if output is not None else folder
    target = output / SAFETENSORS_NAME
    state = read_torch_checkpoint(folder)
    if state is None:
        raise OSError(f"nothing to convert in {folder}: no {TORCH_BIN_NAME} or {TORCH_BIN_INDEX_NAME}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass overwrite=True, or --overwrite, to replace it)")
    with atomic_folder(output) as staging:
        written = staging / SAFETENSORS_NAME
        write_safetensors(state, written, progress)
        changed = _differences(state, written)
        if changed:
            raise ValueError(f"conversion check failed: {changed[:5]} differ after writing {target.name}")
        for name in ("config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (folder / name).is_file() and not output.samefile(folder):  # (in place, they are there already)
                shutil.copy2(folder / name, staging / name)
    return target


def write_safetensors(state: dict[str, np.ndarray], path: Path, progress: bool = True) -> None:
    """The safetensors layout by hand (see the top of this file), streaming one tensor at a time.

    Written here rather than with ``safetensors.numpy.save_file`` for two reasons: that function wants every
    array in memory at once (the whole model, when our arrays are views of a memory-mapped ``.bin``), and it
    cannot report progress. Tensors go widest dtype first, so each one starts at a multiple of its item size.
    """
    from tqdm.auto import tqdm

    codes = {np.dtype(dtype): code for code, dtype in _DTYPES.items() if code != "BF16"}
    names = sorted(state, key=lambda name: -state[name].dtype.itemsize)  # stable: file order otherwise
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in names:
        array = state[name]
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    try:
        with open(path, "wb") as file, tqdm(total=offset, unit="B", unit_scale=True, desc=f"writing {path.stem}",
                                            disable=not progress) as bar:
            file.write(len(text).to_bytes(8, "little") + text)
            for name in names:
                array = np.asarray(state[name], dtype=state[name].dtype.newbyteorder("<"), order="C")
                file.write(array.reshape(-1).view(np.uint8).data)  # the OS pages the .bin in as we go
                bar.update(array.nbytes)
    except BaseException:  # a full disk, an unreadable source, Ctrl-C: leave no half-written file behind
        path.unlink(missing_ok=True)
        raise


def _differences(state: dict[str, np.ndarray], path: Path) -> list[str]:
    """Names whose dtype, shape or bytes differ in the written file, as the safetensors library reads it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as written:
        if set(written.keys()) != set(state):
            return sorted(set(written.keys()) ^ set(state))
        return [name for name, array in state.items() if not _identical(array, written.get_tensor(name))]


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaNs included, which ``==`` would call different)."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.array_equal(np.ascontiguousarray(a).reshape(-1).view(np.uint8),
                               np.ascontiguousarray(b).reshape(-1).view(np.uint8)))

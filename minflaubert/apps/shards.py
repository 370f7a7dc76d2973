"""The output of a corpus job: a folder of Parquet shards and its ``_manifest.json``, written so that it survives a
crash, checked on resume, and read back.

A shard has a ``line`` column (int64, the global line number), optionally ``text``, and ``embedding`` (a
fixed-size list of float32), and records the sha256 of its lines in its metadata. Every file is written under a
hidden temporary name and renamed (``write_atomically``); the manifest records the settings the bytes depend on,
so that a run over an output made with other settings is refused (see ``corpus.py`` for why each rule exists).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

MANIFEST = "_manifest.json"
FORMAT = "minflaubert-embeddings/1"
TEXT_SHA256_KEY = b"minflaubert.text_sha256"  # a shard's own record of the lines it embeds (Parquet metadata)
EXTRA = 'pip install "minflaubert[corpus]"'
# Fixed writer options: with the defaults a pyarrow upgrade could change the bytes (and they are not the best
# here: a dictionary of float vectors never repeats, and min/max statistics of embeddings serve no query).
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": False,
                   "write_statistics": ["line"], "data_page_size": 1 << 20}


def import_extra(name: str):
    """A module of the ``corpus`` extra, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"writing Parquet shards needs {name.split('.')[0]}, which is not installed: {EXTRA}") \
            from error


def text_sha256(texts: list[str]) -> str:
    """The fingerprint of a shard's lines (no line holds a "\\n", so joining them is unambiguous)."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Writing a shard, atomically
# ----------------------------------------------------------------------------------------------------------------
def shard_name(index: int) -> str:
    """The file of shard ``index``: ``part-00042.parquet``."""
    return f"part-{index:05d}.parquet"


def write_shard(folder: Path, index: int, first_line: int, texts: list[str], vectors: np.ndarray,
                keep_text: bool) -> None:
    """One shard as Parquet: columns line, [text,] embedding; one row group; the lines' sha256 in its metadata."""
    pa, pq = import_extra("pyarrow"), import_extra("pyarrow.parquet")
    columns = {"line": pa.array(np.arange(first_line, first_line + len(texts), dtype=np.int64))}
    if keep_text:
        columns["text"] = pa.array(texts, pa.string())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    table = pa.table(columns).replace_schema_metadata({TEXT_SHA256_KEY: text_sha256(texts)})
    write_atomically(folder / shard_name(index),
                     lambda f: pq.write_table(table, f, row_group_size=len(texts), **PARQUET_OPTIONS))


def write_atomically(path: Path, write) -> None:
    """``write(binary file)`` into a hidden temporary sibling, flushed to the disk, then renamed over ``path``.

    A reader, or a crash at any instant, sees the old file or the new one, never half of one. The temporary
    name is unique per process and thread: a Dask task run twice (a worker thought lost) writes twice, safely.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes on the disk before the name: a power loss can't publish a hole
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself, durable too (not possible on every file system)
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# ----------------------------------------------------------------------------------------------------------------
# The output folder: manifest, resume, refusals
# ----------------------------------------------------------------------------------------------------------------
SETTING_NAMES = {"model_sha256": "model (sha256 of its files)", "inputs_sha256": "input (sha256 of each file)"}


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None when it has none; a manifest of another format is refused."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {manifest.get('format')!r})")
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write the manifest as indented UTF-8 JSON, atomically."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    write_atomically(folder / MANIFEST, lambda f: f.write(text.encode("utf-8")))


def setting_differences(then: dict, now: dict) -> list[str]:
    """``["pooling: 'mean' then, 'max' now", ...]`` for every setting that differs."""
    return [f"{SETTING_NAMES.get(name, name)}: {shown(then.get(name))} then, {shown(now.get(name))} now"
            for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]


def shown(value) -> str:
    """A setting's value for a message: a sha256 by its first 12 digits."""
    if isinstance(value, list):
        return f"[{', '.join(map(shown, value))}]"
    return f"{value[:12]}…" if isinstance(value, str) and len(value) == 64 else repr(value)


def job_files(folder: Path) -> list[Path]:
    """The files a job writes in its folder (and only those: --overwrite must not delete anything else)."""
    return [*folder.glob("part-*.parquet"), *folder.glob(MANIFEST), *temporaries(folder)]


def temporaries(folder: Path) -> list[Path]:
    """The temporary files of ``write_atomically`` in a folder: what a writer killed mid-write leaves behind."""
    return list(folder.glob(".*.tmp-*"))


def open_output(folder: Path, manifest: dict, overwrite: bool) -> None:
    """Make ``folder`` ready for the job described by ``manifest``: a new folder, a resumable one (same settings),
    or, with ``overwrite``, one emptied of a previous job's files. Leftovers of a killed run are deleted."""
    previous = read_manifest(folder)
    if previous is None and folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty and holds no {MANIFEST}: it is not an embeddings output. "
                              f"Give -o a new (or empty) folder")
    if previous is not None and not overwrite:
        differences = setting_differences(previous["settings"], manifest["settings"])
        if differences:
            raise ValueError(f"{folder} holds embeddings made with other settings: {'; '.join(differences)}. Run "
                             f"the same command to resume it, or pass --overwrite to start over")
    folder.mkdir(parents=True, exist_ok=True)
    for path in job_files(folder) if overwrite else temporaries(folder):
        path.unlink()
    write_manifest(folder, manifest)


def check_finished_shard(path: Path, texts: list[str]) -> None:
    """A shard found on disk must have been made from these very lines, else the input changed meanwhile."""
    pq = import_extra("pyarrow.parquet")
    recorded = (pq.read_schema(path).metadata or {}).get(TEXT_SHA256_KEY, b"").decode()
    if recorded != text_sha256(texts):
        raise ValueError(f"{path} was made from other lines than the input's lines it stands for: the input "
                         f"changed since. Pass --overwrite to start over")


def unfinished_shards(folder: Path, shards, progress) -> Iterator[tuple[int, int, list[str]]]:
    """The shards still to embed; finished ones are checked against their lines and counted as done."""
    for index, first_line, texts in shards:
        path = folder / shard_name(index)
        if path.exists():
            check_finished_shard(path, texts)
            progress.update(len(texts))
        else:
            yield index, first_line, texts


def shard_table(lines: int, shard_lines: int) -> list[dict]:
    """The shard boundaries of ``lines`` lines: [{file, first_line, lines}, ...]."""
    return [{"file": shard_name(i), "first_line": first, "lines": min(shard_lines, lines - first)}
            for i, first in enumerate(range(0, lines, shard_lines))]


def close_output(folder: Path, manifest: dict) -> dict:
    """Record the finished job: its line count and shard boundaries. Shards beyond them mean the input shrank.
    Temporary files left by Dask workers killed mid-write go: every shard is in place now."""
    lines = sum(entry["lines"] for entry in manifest["inputs"])
    if lines == 0:
        raise ValueError("no lines to embed: the input is empty")
    shards = shard_table(lines, manifest["settings"]["shard_lines"])
    stray = sorted({path.name for path in folder.glob("part-*.parquet")} - {shard["file"] for shard in shards})
    if stray:
        raise ValueError(f"{folder} holds shards beyond the input's {lines} lines ({', '.join(stray)}): the input "
                         f"changed since they were written. Pass --overwrite to start over")
    for path in temporaries(folder):
        path.unlink(missing_ok=True)
    finished = {**manifest, "status": "complete", "lines": lines, "shards": shards}
    write_manifest(folder, finished)
    return finished


# ----------------------------------------------------------------------------------------------------------------
# Reading back
# ----------------------------------------------------------------------------------------------------------------
def finished_manifest(folder) -> dict:
    """The manifest of a complete output, else an error that says what to do."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder} holds no {MANIFEST}: not an embeddings output of minflaubert embed")
    if manifest["status"] != "complete":
        raise ValueError(f"{folder} is unfinished (the job stopped before its end): run the same command again "
                         f"to finish it")
    return manifest


def iter_embeddings(folder) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(line numbers [n] int64, vectors [n, dim] float32) shard by shard, in line order: one shard in memory at
    a time, for corpora whose vectors do not fit in memory."""
    pq = import_extra("pyarrow.parquet")
    folder = Path(folder)
    for shard in finished_manifest(folder)["shards"]:
        table = pq.read_table(folder / shard["file"], columns=["line", "embedding"])
        lines = table.column("line").to_numpy()
        if not np.array_equal(lines, np.arange(shard["first_line"], shard["first_line"] + shard["lines"])):
            raise ValueError(f"{folder / shard['file']} does not hold lines {shard['first_line']}.. as the "
                             f"manifest says: the folder was changed by something else than minflaubert")
        embedding = table.column("embedding").combine_chunks()
        yield lines, embedding.flatten().to_numpy().reshape(len(lines), embedding.type.list_size)


def read_embeddings(folder, memmap: str | os.PathLike | None = None) -> np.ndarray:
    """The whole output as one [lines, dim] float32 array, row i = line i of the input.

    ``memmap``: the path of an ``.npy`` file to fill instead of memory (``np.load(path, mmap_mode="r")`` reopens
    it later): the vectors of a corpus larger than the memory, one shard in memory at a time.
    """
    manifest = finished_manifest(folder)
    shape = (manifest["lines"], manifest["dim"])
    vectors = np.empty(shape, np.float32) if memmap is None else \
        np.lib.format.open_memmap(memmap, mode="w+", dtype=np.float32, shape=shape)
    for lines, shard in iter_embeddings(folder):
        vectors[lines[0]:lines[-1] + 1] = shard
    if memmap is not None:
        vectors.flush()
    return vectors

"""The output of a corpus job: a folder of Parquet shards and its ``_manifest.json``, written so that it survives a
crash, checked on resume, and read back.

A shard has a ``line`` column (int64, the global line number), optionally ``text``, and ``embedding`` (a
fixed-size list of float32), and records in its metadata the sha256 of its lines and of the job's settings. Every
file is written under a hidden temporary name and renamed (``write_atomically``); the manifest records the settings
the bytes depend on, so that a run over an output made with other settings is refused (see ``corpus.py`` for why
each rule exists).

An output folder has one writer at a time (``writer_lock``), and a job deletes only its own files: the shards
(``part-00042.parquet``, the names ``shard_name`` makes, no other), the manifest, and temporary files that carry
its job id. Whatever else the folder holds stays.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..checkpoints.atomic import atomic_file
from ..checkpoints.json_files import read_json_object

try:
    import fcntl
except ImportError:  # Windows: no lock (one writer per output is then up to you)
    fcntl = None

MANIFEST = "_manifest.json"
LOCK = "_writer.lock"  # held by the job writing the folder; says who it is (deleted when the job ends)
FORMAT = "minflaubert-embeddings/1"
TEXT_SHA256_KEY = b"minflaubert.text_sha256"  # a shard's own record of the lines it embeds (Parquet metadata)
SETTINGS_SHA256_KEY = b"minflaubert.settings_sha256"  # ... and of the settings it was made with
SHARD_NAME = re.compile(r"part-(\d{5,})\.parquet")
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


def is_shard_name(name: str) -> bool:
    """Whether ``name`` is one that ``shard_name`` makes (``part-mine.parquet`` is not: it is not ours)."""
    match = SHARD_NAME.fullmatch(name)
    return match is not None and shard_name(int(match[1])) == name


def write_shard(folder: Path, index: int, first_line: int, texts: list[str], vectors: np.ndarray,
                keep_text: bool, fingerprint: str) -> None:
    """One shard as Parquet: columns line, [text,] embedding; one row group; the sha256 of its lines and of the
    job's settings in its metadata."""
    pa, pq = import_extra("pyarrow"), import_extra("pyarrow.parquet")
    columns = {"line": pa.array(np.arange(first_line, first_line + len(texts), dtype=np.int64))}
    if keep_text:
        columns["text"] = pa.array(texts, pa.string())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    table = pa.table(columns).replace_schema_metadata({TEXT_SHA256_KEY: text_sha256(texts),
                                                       SETTINGS_SHA256_KEY: fingerprint})
    write_atomically(folder / shard_name(index),
                     lambda f: pq.write_table(table, f, row_group_size=len(texts), **PARQUET_OPTIONS),
                     owner=job_id(fingerprint))


def write_atomically(path: Path, write, owner: str = "") -> None:
    """``write(binary file)`` into a hidden temporary sibling ``.NAME.tmp-[OWNER-]HOST-PID-THREAD``, flushed to the
    disk, then renamed over ``path`` (``atomic.atomic_file``).

    A reader, or a crash at any instant, sees the old file or the new one, never half of one. The temporary
    name is unique per process and thread: a Dask task run twice (a worker thought lost) writes twice, safely;
    ``owner`` (the job id) tells a job's leftovers from anyone else's files.
    """
    with atomic_file(path, owner) as temporary, open(temporary, "wb") as f:
        write(f)


def job_id(fingerprint: str) -> str:
    """The id a job's temporary files carry: its settings' fingerprint (``settings_sha256``), so that a resumed
    run recognises them."""
    return f"job{fingerprint[:16]}"


def settings_sha256(settings: dict) -> str:
    """The fingerprint of a job's settings (recorded in each shard, checked on resume)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# The output folder: manifest, resume, refusals
# ----------------------------------------------------------------------------------------------------------------
SETTING_NAMES = {"model_sha256": "model (sha256 of its files)", "inputs_sha256": "input (sha256 of each file)"}


@contextlib.contextmanager
def writer_lock(folder: Path):
    """Hold the output's lock (an exclusive ``flock`` on ``_writer.lock``) for a job's whole run: a second job on
    the same folder is refused at once, with the holder's pid, host and start time, which the lock file holds.

    Two jobs at once would mix their shards under one manifest (a mean-pooled and a max-pooled half that read
    back as one), or delete each other's temporary files. The lock goes with the process: a killed job leaves a
    lock file that nobody holds, and the next job takes it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    descriptor = lock_file(path)
    try:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: see lock_file
        os.close(descriptor)


def lock_file(path: Path) -> int:
    """Open ``path`` and lock it, or raise BlockingIOError naming the holder. -> the open descriptor."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return descriptor
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip() or "it is starting"
            os.close(descriptor)
            raise BlockingIOError(f"{path.parent} is being written by another embed job ({holder}): one job per "
                                  f"output at a time; wait for it to end, or give -o another folder") from None
        # subtle: the holder deletes the file when it ends; if that happened between our open and our lock, we
        # hold a deleted file that no one else will ever lock: open the path again.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(descriptor), os.stat(path)):
                return descriptor
        os.close(descriptor)


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None when it has none; a manifest of another format or shape is refused."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = read_json_object(path, holds="(a corpus job's manifest)")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {manifest.get('format')!r})")
    if not isinstance(manifest.get("settings"), dict):
        raise ValueError(f"{path}: field 'settings' must be a JSON object, got {manifest.get('settings')!r}"[:300])
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write the manifest as indented UTF-8 JSON, atomically."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    write_atomically(folder / MANIFEST, lambda f: f.write(text.encode("utf-8")),
                     owner=job_id(settings_sha256(manifest["settings"])))


def setting_differences(then: dict, now: dict) -> list[str]:
    """``["pooling: 'mean' then, 'max' now", ...]`` for every setting that differs."""
    return [f"{SETTING_NAMES.get(name, name)}: {shown(then.get(name))} then, {shown(now.get(name))} now"
            for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]


def shown(value) -> str:
    """A setting's value for a message: a sha256 by its first 12 digits."""
    if isinstance(value, list):
        return f"[{', '.join(map(shown, value))}]"
    return f"{value[:12]}…" if isinstance(value, str) and len(value) == 64 else repr(value)


def shard_files(folder: Path) -> list[Path]:
    """The shards a job wrote in ``folder``: the files named as ``shard_name`` names them, and no other."""
    return sorted(path for path in folder.glob("part-*.parquet") if is_shard_name(path.name))


def temporaries(folder: Path, settings: dict) -> list[Path]:
    """The temporary files of the job with these settings (``write_atomically``, owner ``job_id``) that writers
    killed mid-write left: a shard's or the manifest's, carrying the job's id. No one else's."""
    owner = f".tmp-{job_id(settings_sha256(settings))}-"
    return [path for path in folder.glob(f".*{owner}*")
            if (name := path.name[1:].partition(owner)[0]) == MANIFEST or is_shard_name(name)]


def open_output(folder: Path, manifest: dict, overwrite: bool) -> None:
    """Make ``folder`` (locked by ``writer_lock``) ready for the job described by ``manifest``: a new folder, a
    resumable one (same settings), or, with ``overwrite``, one emptied of a previous job's files. Leftovers of a
    killed run of the same job are deleted. An output of an empty input holds nothing to lose: any job takes it."""
    previous = read_manifest(folder)
    if previous is None and any(path.name != LOCK for path in folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty and holds no {MANIFEST}: it is not an embeddings output. "
                              f"Give -o a new (or empty) folder")
    start_over = overwrite or (previous is not None and previous.get("status") == "complete"
                               and previous.get("lines") == 0)
    if previous is not None and not start_over:
        differences = setting_differences(previous["settings"], manifest["settings"])
        if differences:
            raise ValueError(f"{folder} holds embeddings made with other settings: {'; '.join(differences)}. Run "
                             f"the same command to resume it, or pass --overwrite to start over")
    leftovers = temporaries(folder, manifest["settings"])
    if previous is not None and start_over:
        leftovers += [*shard_files(folder), *temporaries(folder, previous["settings"])]
    for path in leftovers:
        path.unlink(missing_ok=True)
    write_manifest(folder, manifest)


def check_finished_shard(path: Path, texts: list[str], fingerprint: str) -> None:
    """A shard found on disk must have been made from these very lines, else the input changed meanwhile, and
    with these very settings (``settings_sha256``), else it is another job's."""
    pq = import_extra("pyarrow.parquet")
    metadata = pq.read_schema(path).metadata or {}
    if metadata.get(SETTINGS_SHA256_KEY, b"").decode() != fingerprint:
        raise ValueError(f"{path} was made with other settings than this job's (pooling, model, max_length...: "
                         f"see {MANIFEST}). Pass --overwrite to start over")
    if metadata.get(TEXT_SHA256_KEY, b"").decode() != text_sha256(texts):
        raise ValueError(f"{path} was made from other lines than the input's lines it stands for: the input "
                         f"changed since. Pass --overwrite to start over")


def unfinished_shards(folder: Path, shards, fingerprint: str, progress) -> Iterator[tuple[int, int, list[str]]]:
    """The shards still to embed; finished ones are checked against their lines and settings, and counted as
    done."""
    for index, first_line, texts in shards:
        path = folder / shard_name(index)
        if path.exists():
            check_finished_shard(path, texts, fingerprint)
            progress.update(len(texts))
        else:
            yield index, first_line, texts


def shard_table(lines: int, shard_lines: int) -> list[dict]:
    """The shard boundaries of ``lines`` lines: [{file, first_line, lines}, ...]."""
    return [{"file": shard_name(i), "first_line": first, "lines": min(shard_lines, lines - first)}
            for i, first in enumerate(range(0, lines, shard_lines))]


def close_output(folder: Path, manifest: dict) -> dict:
    """Record the finished job: its line count and shard boundaries (none for an empty input: a complete, empty
    output). Shards beyond them mean the input shrank. Temporary files left by Dask workers killed mid-write go:
    every shard is in place now."""
    lines = sum(entry["lines"] for entry in manifest["inputs"])
    shards = shard_table(lines, manifest["settings"]["shard_lines"])
    stray = sorted({path.name for path in shard_files(folder)} - {shard["file"] for shard in shards})
    if stray:
        raise ValueError(f"{folder} holds shards beyond the input's {lines} lines ({', '.join(stray)}): the input "
                         f"changed since they were written. Pass --overwrite to start over")
    for path in temporaries(folder, manifest["settings"]):
        path.unlink(missing_ok=True)
    finished = {**manifest, "status": "complete", "lines": lines, "shards": shards}
    write_manifest(folder, finished)
    return finished


# ----------------------------------------------------------------------------------------------------------------
# Reading back
# ----------------------------------------------------------------------------------------------------------------
def finished_manifest(folder) -> dict:
    """The manifest of a complete output, checked field by field, else an error that says what is wrong."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder} holds no {MANIFEST}: not an embeddings output of minflaubert embed")
    if manifest.get("status") != "complete":
        raise ValueError(f"{folder} is unfinished (the job stopped before its end): run the same command again "
                         f"to finish it")
    path = folder / MANIFEST
    lines, shards = manifest_count(path, manifest, "lines", 0), manifest.get("shards")
    manifest_count(path, manifest, "dim", 1)
    if not isinstance(shards, list):
        raise ValueError(f"{path}: field 'shards' must be a list, got {shards!r}"[:300])
    pq = import_extra("pyarrow.parquet")
    next_line = 0
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict):
            raise ValueError(f"{path}: field 'shards[{i}]' must be a JSON object, got {shard!r}"[:300])
        file = shard_path(folder, shard.get("file"), f"shards[{i}].file")
        if manifest_count(path, shard, "first_line", 0, f"shards[{i}].") != next_line:
            raise ValueError(f"{path}: field 'shards[{i}].first_line' must be {next_line}, where shard {i - 1} ends")
        next_line += manifest_count(path, shard, "lines", 1, f"shards[{i}].")
        if pq.read_metadata(file).num_rows != shard["lines"]:  # (before anyone allocates what the manifest says)
            raise ValueError(f"{path}: field 'shards[{i}].lines' says {shard['lines']}, but {file.name} holds "
                             f"{pq.read_metadata(file).num_rows} rows")
    if next_line != lines:
        raise ValueError(f"{path}: field 'lines' says {lines}, but the shards hold {next_line} lines")
    return manifest


def manifest_count(path: Path, record: dict, name: str, least: int, where: str = "") -> int:
    """A whole number ``>= least`` from the manifest, or a ValueError naming the manifest and the field."""
    value = record.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{path}: field '{where}{name}' must be a whole number >= {least}, got {value!r}"[:300])
    return value


def shard_path(folder: Path, name, field: str) -> Path:
    """The path of a shard the manifest lists: a plain file name, in the folder itself (a name with a separator,
    ``..``, an absolute path or a link leading out of the folder is refused: a manifest must not make us read
    another file)."""
    if (not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name
            or any(separator and separator in name for separator in ("/", "\\", os.sep, os.altsep))):
        raise ValueError(f"{folder / MANIFEST}: field '{field}' must be a file name in the folder, got {name!r}"[:300])
    path = folder / name
    if folder.resolve() not in path.resolve().parents:
        raise ValueError(f"{folder / MANIFEST}: field '{field}' ({name}) leads out of the folder, to "
                         f"{path.resolve()}")
    return path


def iter_embeddings(folder) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(line numbers [n] int64, vectors [n, dim] float32) shard by shard, in line order: one shard in memory at
    a time, for corpora whose vectors do not fit in memory."""
    pq = import_extra("pyarrow.parquet")
    folder = Path(folder)
    manifest = finished_manifest(folder)
    for shard in manifest["shards"]:
        path = shard_path(folder, shard["file"], "file")
        table = pq.read_table(path, columns=["line", "embedding"])
        lines = table.column("line").to_numpy()
        embedding = table.column("embedding").combine_chunks()
        if (not np.array_equal(lines, np.arange(shard["first_line"], shard["first_line"] + shard["lines"]))
                or getattr(embedding.type, "list_size", None) != manifest["dim"]):
            raise ValueError(f"{path} does not hold lines {shard['first_line']}.. of {manifest['dim']} numbers as "
                             f"the manifest says: the folder was changed by something else than minflaubert")
        yield lines, embedding.flatten().to_numpy().reshape(len(lines), manifest["dim"])


def read_embeddings(folder, memmap: str | os.PathLike | None = None) -> np.ndarray:
    """The whole output as one [lines, dim] float32 array, row i = line i of the input.

    ``memmap``: the path of an ``.npy`` file to fill instead of memory (``np.load(path, mmap_mode="r")`` reopens
    it later): the vectors of a corpus larger than the memory, one shard in memory at a time.
    """
    manifest = finished_manifest(folder)
    shape = (manifest["lines"], manifest["dim"])
    vectors = np.empty(shape, np.float32) if memmap is None else \
        np.lib.format.open_memmap(memmap, mode="w+", dtype=np.float32, shape=shape)
    for lines, shard in iter_embeddings(folder):  # (each shard's lines checked: they fit the array)
        vectors[lines[0]:lines[-1] + 1] = shard
    if memmap is not None:
        vectors.flush()
    return vectors

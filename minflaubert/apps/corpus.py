"""Embed a whole corpus: one vector per line, streamed into Parquet shards that survive a crash.

    minflaubert embed novels/*.txt -o vectors/ --pooling mean           # part-00000.parquet, part-00001.parquet...
    minflaubert embed novels/*.txt -o vectors/ --dask local:2           # the same bytes, from two processes
    >>> vectors = minflaubert.read_embeddings("vectors/")                # [lines, dim] float32, in line order

``minflaubert embed FILE -o vectors.npy`` holds every line and every vector in memory and writes at the very end:
fine for a few thousand lines, useless for a library of novels. This module is the job at scale, and what it
promises is what it is built around:

* **Bounded memory.** The input is read lazily; ``shard_lines`` lines at a time form a *shard*, embedded and
  written to its own Parquet file. Inside a shard, windows of ``WINDOW_BATCHES`` batches go through the
  feature-extraction pipeline, which sorts each window by length (a batch of similar lengths wastes less work)
  and gives the vectors back in input order. Memory holds one shard's texts and vectors plus one window's
  activations, whatever the size of the corpus.
* **Resume after a crash.** A shard is written under a hidden temporary name, flushed to disk, then renamed: on
  POSIX a rename is atomic, so ``part-00042.parquet`` is either complete or absent, even after a power loss.
  Started again with the same command, the job keeps every finished shard and redoes only the others.
* **The same bytes, whatever happened.** A line's vector depends, in its last bits, on its batch mates (a matrix
  product adds in an order that depends on its width) and on how many threads BLAS splits a product over. So a
  batch is a function of its shard alone (same windows, same order on every run, whatever the resume point or
  the worker), every forward pass runs on one BLAS thread (parallelism comes from processes: ``--dask``), and
  the Parquet writer's options are fixed. Same input, settings and software -> same bytes, on a machine of the
  same kind (another CPU may run other BLAS kernels).
* **Checked settings.** ``_manifest.json`` records what the bytes depend on (the model's files hashed, pooling,
  normalisation, maximum length, batch size, shard size, the inputs' hashes, the software versions); a run over
  an output made with other settings is refused and told which one differs (``overwrite=True`` starts over).
  Each shard also keeps the sha256 of its own lines, so a changed input (even on stdin) is caught on resume.
* **Readable by every data tool.** A shard has a ``line`` column (int64, the global line number), optionally
  ``text``, and ``embedding`` (a fixed-size list of float32). The manifest's leading underscore, and the leading
  dot of temporary files, are the convention (Hadoop's ``_SUCCESS``, ``_metadata``) that pyarrow, pandas and
  Spark follow to skip a folder's bookkeeping: the folder opens as one dataset as it is.

pyarrow, dask/distributed and threadpoolctl are the optional extra ``corpus`` (``pip install "minflaubert[corpus]"``).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import itertools
import json
import os
import socket
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from .. import __version__

MANIFEST = "_manifest.json"
FORMAT = "minflaubert-embeddings/1"
SHARD_LINES = 10_000
WINDOW_BATCHES = 16  # lines sorted by length together: 16 batches (more sorts better, but holds more activations)
TEXT_SHA256_KEY = b"minflaubert.text_sha256"  # a shard's own record of the lines it embeds (Parquet metadata)
EXTRA = 'pip install "minflaubert[corpus]"'
# Fixed writer options: with the defaults a pyarrow upgrade could change the bytes (and they are not the best
# here: a dictionary of float vectors never repeats, and min/max statistics of embeddings serve no query).
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": False,
                   "write_statistics": ["line"], "data_page_size": 1 << 20}
CHUNK_BYTES = 1 << 20


def import_extra(name: str):
    """A module of the ``corpus`` extra, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"writing Parquet shards needs {name.split('.')[0]}, which is not installed: {EXTRA}") \
            from error


# ----------------------------------------------------------------------------------------------------------------
# Reading the input, lazily
# ----------------------------------------------------------------------------------------------------------------
class Tally:
    """The size and sha256 of the bytes read so far: an input's fingerprint, taken while it is read."""

    def __init__(self):
        self.bytes, self.digest = 0, hashlib.sha256()

    def update(self, raw: bytes) -> None:
        self.bytes += len(raw)
        self.digest.update(raw)


@contextlib.contextmanager
def open_binary(source: str):
    """The bytes of a file, of a gzip file (``.gz``), or of stdin (``-``, left open afterwards)."""
    if source == "-":
        yield sys.stdin.buffer
    else:
        opener = gzip.open if str(source).endswith(".gz") else open
        with opener(source, "rb") as stream:
            yield stream


def read_lines(source: str, tally: Tally | None = None) -> Iterator[str]:
    """The lines of a UTF-8 text (a file, ``.gz`` or ``-`` for stdin), one at a time: one text per line.

    A line ends at ``\\n`` (its ``\\r`` too, for Windows files) and nowhere else. ``str.splitlines`` would also cut
    at U+2028, U+0085, form feeds..., which text copied from the web contains, and the vectors would no longer
    line up with the file's lines. A last line without ``\\n`` counts; no empty line is invented after a final
    ``\\n``. Invalid UTF-8 is an error naming the line: replacing the bytes would embed another text than yours.
    """
    with open_binary(source) as stream:
        for number, raw in enumerate(stream, start=1):  # subtle: a binary stream splits at b"\n" only
            if tally is not None:
                tally.update(raw)
            try:
                yield raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{source}: line {number} is not valid UTF-8 (byte {error.start + 1} of the line "
                                 f"is {raw[error.start:error.start + 1]!r})") from None


def describe_input(source: str) -> dict:
    """What identifies an input: its bytes, sha256 and lines. Stdin cannot be read twice: it is described while
    the job reads it (see ``corpus_lines``)."""
    if source == "-":
        return {"path": "-"}
    tally = Tally()
    lines = sum(1 for _ in read_lines(source, tally))  # also finds invalid UTF-8 before hours of work, not after
    return {"path": str(source), "bytes": tally.bytes, "sha256": tally.digest.hexdigest(), "lines": lines}


def corpus_lines(inputs: list[dict]) -> Iterator[str]:
    """Every line of every input, in order. Each input's ``first_line`` is set, and stdin's description filled
    in, as the reading reaches them."""
    first_line = 0
    for entry in inputs:
        tally, lines = Tally(), 0
        entry["first_line"] = first_line
        for line in read_lines(entry["path"], tally):
            lines += 1
            yield line
        entry.update(bytes=tally.bytes, sha256=tally.digest.hexdigest(), lines=lines)
        first_line += lines


def iter_shards(lines: Iterator[str], shard_lines: int) -> Iterator[tuple[int, int, list[str]]]:
    """(shard index, its first line number, its texts), ``shard_lines`` lines at a time (fewer in the last)."""
    for index in itertools.count():
        texts = list(itertools.islice(lines, shard_lines))
        if not texts:
            return
        yield index, index * shard_lines, texts


def text_sha256(texts: list[str]) -> str:
    """The fingerprint of a shard's lines (no line holds a "\\n", so joining them is unambiguous)."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Embedding and writing one shard: the unit of work, run in this process or as a Dask task
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to embed and write any shard of one job (small: it travels with each task)."""

    folder: str
    model: str  # the checkpoint folder; on a cluster, every worker must have it at this path
    model_sha256: str
    pooling: str
    normalize: bool
    batch_size: int
    keep_text: bool


def model_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over every file of a checkpoint folder (weights, config, vocabulary, merges), names included."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


_LOADED = threading.local()  # a model is not shared between threads: each worker thread loads its own, once


def loaded_pipeline(job: ShardJob):
    """The job's feature-extraction pipeline, loaded once per worker thread and reused by all its shards.

    On loading, the checkpoint's files are hashed again and compared with the job's: on a cluster, a worker
    with another checkpoint at the same path would otherwise write other vectors into the same dataset.
    """
    key = (job.model, job.model_sha256, job.batch_size)
    if getattr(_LOADED, "key", None) != key:
        from .pipelines import pipeline

        if model_sha256(job.model) != job.model_sha256:
            raise ValueError(f"{job.model} on {socket.gethostname()} is not the checkpoint the job started with "
                             f"(its files' sha256 differ): every worker needs the same files at that path")
        _LOADED.pipeline = pipeline("feature-extraction", model=job.model, batch_size=job.batch_size)
        _LOADED.key = key
    return _LOADED.pipeline


def embed_texts(extract, texts: list[str], pooling: str, normalize: bool, progress=None) -> tuple[np.ndarray, int]:
    """([len(texts), dim] float32 vectors, how many texts were cut to the model's length): one pooled vector per
    text, in order, by windows of ``WINDOW_BATCHES`` batches (the pipeline sorts each window by length).
    ``progress(n)`` is called after each window.

    The pipeline warns once per text it cuts; over a corpus that is thousands of lines on stderr, and a Dask
    worker's stderr is a pipe nobody may be reading (a full pipe blocks the worker). So the warnings are counted
    here and the job reports the total once.
    """
    from .pipeline_base import TextCutWarning

    window = WINDOW_BATCHES * extract.batch_size
    vectors = np.empty((len(texts), extract.model.config.emb_dim), dtype=np.float32)
    cut = 0
    for start in range(0, len(texts), window):
        part = texts[start:start + window]
        # subtle: catch_warnings swaps the process's warning filters; a job's thread is the only one warning here
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TextCutWarning)
            vectors[start:start + len(part)] = extract(part, pooling=pooling, normalize=normalize)
        for warning in caught:
            if issubclass(warning.category, TextCutWarning):
                cut += 1
            else:  # any other warning goes on as it came
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if progress is not None:
            progress(len(part))
    return vectors, cut


def warn_cut(cut: int, lines: int, max_length: int) -> None:
    if cut:
        warnings.warn(f"{cut:,} of {lines:,} lines were longer than the model's {max_length} tokens and were cut "
                      f"there: the rest of them is not in their vectors", stacklevel=3)


def embed_shard(job: ShardJob, index: int, first_line: int, texts: list[str], progress=None) -> tuple[int, int]:
    """Embed one shard's texts and write ``part-INDEX.parquet`` atomically; -> (its lines, how many were cut)."""
    threadpoolctl = import_extra("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):  # the bytes must not depend on the cores
        vectors, cut = embed_texts(loaded_pipeline(job), texts, job.pooling, job.normalize, progress)
    write_shard(Path(job.folder), index, first_line, texts, vectors, job.keep_text)
    return len(texts), cut


def shard_name(index: int) -> str:
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
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {manifest.get('format')!r})")
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
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
# The job
# ----------------------------------------------------------------------------------------------------------------
def embed_corpus(inputs, output, model=None, pooling: str = "mean", normalize: bool = False, batch_size: int = 8,
                 shard_lines: int | None = None, keep_text: bool = False, dask: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Embed every line of ``inputs`` (paths, ``.gz`` or ``-`` for stdin) into Parquet shards in folder ``output``.

    Resumes a previous run of the same job; refuses one made with other settings unless ``overwrite``.
    ``dask``: ``"local:N"`` (a LocalCluster of N processes on this machine) or a scheduler's address
    (``"tcp://HOST:PORT"``). -> a summary: folder, lines, shards, dimension, and how many shards were resumed.
    """
    from ..checkpoints.hub import resolve_name
    from ..models.inputs import check_choice, check_positive
    from ..models.sentences import POOLINGS
    from .pipelines import default_model

    for module in ("pyarrow", "threadpoolctl", *(["distributed"] if dask else [])):
        import_extra(module)  # fail now, not after hashing a corpus
    folder = Path(output)
    shard_lines = check_positive("shard_lines", SHARD_LINES if shard_lines is None else shard_lines)
    checkpoint = resolve_name(model if model is not None else default_model("feature-extraction"),
                              parts=("model", "tokenizer"))
    job = ShardJob(folder=str(folder.resolve()), model=str(checkpoint.resolve()),  # a worker may run elsewhere
                   model_sha256=model_sha256(checkpoint), pooling=check_choice("pooling", pooling, POOLINGS),
                   normalize=bool(normalize), batch_size=check_positive("batch_size", batch_size),
                   keep_text=bool(keep_text))
    extract = loaded_pipeline(job)
    described = [describe_input(str(source)) for source in (inputs or ["-"])]
    manifest = job_manifest(job, extract, described, shard_lines)
    open_output(folder, manifest, overwrite)
    resumed = len(list(folder.glob("part-*.parquet")))
    total = None if any(entry["path"] == "-" for entry in described) else sum(e["lines"] for e in described)
    with tqdm(total=total, unit=" lines", desc="embed", disable=not progress, file=sys.stderr) as bar:
        todo = unfinished_shards(folder, iter_shards(corpus_lines(described), shard_lines), bar)
        if dask is None:
            cut = sum(embed_shard(job, index, first_line, texts, bar.update)[1] for index, first_line, texts in todo)
        else:
            cut = run_on_dask(dask, job, todo, bar)
    finished = close_output(folder, manifest)
    warn_cut(cut, finished["lines"], extract.max_length)
    return {"output": str(output), "lines": finished["lines"], "shards": len(finished["shards"]),
            "dim": finished["dim"], "pooling": job.pooling, "resumed_shards": resumed}


def job_manifest(job: ShardJob, extract, inputs: list[dict], shard_lines: int) -> dict:
    """The manifest at the job's start; ``settings`` is what a resumed run must share with it."""
    pa = import_extra("pyarrow")
    return {
        "format": FORMAT,
        "settings": {
            "model_sha256": job.model_sha256, "pooling": job.pooling, "normalize": job.normalize,
            "max_length": extract.max_length, "batch_size": job.batch_size,  # batch mates change the last bits
            "shard_lines": shard_lines, "keep_text": job.keep_text,
            "inputs_sha256": [entry.get("sha256", "-") for entry in inputs],
            "minflaubert": __version__, "numpy": np.__version__, "pyarrow": pa.__version__,
        },
        "model": job.model,
        "dim": extract.model.config.emb_dim,
        "columns": ["line", *(["text"] if job.keep_text else []), "embedding"],
        "inputs": inputs,
        "status": "running",
    }


# ----------------------------------------------------------------------------------------------------------------
# Dask: shards become tasks
# ----------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def dask_client(spec: str):
    """A ``distributed.Client``: ``local:N`` starts a LocalCluster of N one-thread worker processes on loopback
    (each process loads the model once); anything else is the address of a running scheduler."""
    distributed = import_extra("distributed")
    if spec.startswith("local:"):
        workers = spec.removeprefix("local:")
        if not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"--dask local:N takes a number of worker processes N >= 1, got {spec!r}")
        cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        with cluster, distributed.Client(cluster) as client:
            yield client
    elif "://" in spec:
        with distributed.Client(spec) as client:
            yield client
    else:
        raise ValueError(f"--dask takes local:N or a scheduler address like tcp://HOST:8786, got {spec!r}")


def run_on_dask(spec: str, job: ShardJob, shards, bar) -> int:
    """Submit each shard as a task, at most two per worker in flight (the client holds their texts: bounded
    memory again), and count lines as tasks finish. A task's error stops the job with that error.
    -> how many lines the workers cut to the model's length."""
    distributed = import_extra("distributed")
    cut = 0

    def finished(future) -> None:
        nonlocal cut
        lines, cut_in_shard = future.result()
        bar.update(lines)
        cut += cut_in_shard

    with dask_client(spec) as client:
        in_flight = distributed.as_completed()
        limit = 2 * max(1, len(client.scheduler_info()["workers"]))
        for index, first_line, texts in shards:
            in_flight.add(client.submit(embed_shard, job, index, first_line, texts, pure=False))
            while in_flight.count() >= limit:
                finished(next(in_flight))
        for future in in_flight:
            finished(future)
    return cut


# ----------------------------------------------------------------------------------------------------------------
# Reading back
# ----------------------------------------------------------------------------------------------------------------
def finished_manifest(folder) -> dict:
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


# ----------------------------------------------------------------------------------------------------------------
# Small jobs: one .npy array
# ----------------------------------------------------------------------------------------------------------------
def embed_to_npy(inputs, output, model=None, pooling: str = "mean", normalize: bool = False, batch_size: int = 8,
                 progress: bool = True) -> dict:
    """Every line of ``inputs`` -> one [lines, dim] float32 array saved as ``output`` (.npy), written atomically:
    an existing file is replaced only once the new one is complete. Everything is in memory: for small jobs."""
    from .pipelines import pipeline

    texts = list(corpus_lines([{"path": str(source)} for source in (inputs or ["-"])]))
    if not texts:
        raise ValueError("no lines to embed: the input is empty")
    extract = pipeline("feature-extraction", model=model, batch_size=batch_size)
    with tqdm(total=len(texts), unit=" lines", desc="embed", disable=not progress, file=sys.stderr) as bar:
        vectors, cut = embed_texts(extract, texts, pooling, normalize, bar.update)
    write_atomically(Path(output), lambda f: np.save(f, vectors))
    warn_cut(cut, len(texts), extract.max_length)
    return {"output": str(output), "texts": len(texts), "shape": list(vectors.shape), "pooling": pooling}

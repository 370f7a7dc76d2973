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
  Each shard also keeps the sha256 of its own lines and of those settings, so a changed input (even on stdin), or
  a shard of another job, is caught on resume.
* **One writer, and only our files.** A job holds the folder's lock (``_writer.lock``) from start to end: a second
  job on the same folder is refused at once and told who holds it. Resuming or ``overwrite`` deletes only the
  job's own files (its shards, manifest and temporary files): a folder's other files stay.
* **Readable by every data tool.** A shard has a ``line`` column (int64, the global line number), optionally
  ``text``, and ``embedding`` (a fixed-size list of float32). The manifest's leading underscore, and the leading
  dot of temporary files, are the convention (Hadoop's ``_SUCCESS``, ``_metadata``) that pyarrow, pandas and
  Spark follow to skip a folder's bookkeeping: the folder opens as one dataset as it is.

pyarrow, dask/distributed and threadpoolctl are the optional extra ``corpus`` (``pip install "minflaubert[corpus]"``).

This module is the job; the output folder's format (Parquet shards, manifest, resume checks, reading back) is
``shards.py``, and reading the input ``lines.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
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
from .lines import corpus_lines, describe_input
from .shards import (FORMAT, close_output, import_extra, open_output, settings_sha256, shard_files, unfinished_shards,
                     write_atomically, write_shard, writer_lock)

SHARD_LINES = 10_000
WINDOW_BATCHES = 16  # lines sorted by length together: 16 batches (more sorts better, but holds more activations)
CHUNK_BYTES = 1 << 20


def iter_shards(lines: Iterator[str], shard_lines: int) -> Iterator[tuple[int, int, list[str]]]:
    """(shard index, its first line number, its texts), ``shard_lines`` lines at a time (fewer in the last)."""
    for index in itertools.count():
        texts = list(itertools.islice(lines, shard_lines))
        if not texts:
            return
        yield index, index * shard_lines, texts


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
    settings_sha256: str = ""  # the fingerprint of the manifest's settings, recorded in each shard (set once known)


def model_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over every file of a checkpoint folder (weights, config, vocabulary, merges), names included."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of one file, read a block at a time."""
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
            vectors[start:start + len(part)] = extract(part, pooling=pooling, normalize=normalize, return_tensors=True)
        for warning in caught:
            if issubclass(warning.category, TextCutWarning):
                cut += 1
            else:  # any other warning goes on as it came
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if progress is not None:
            progress(len(part))
    return vectors, cut


def warn_cut(cut: int, lines: int, max_length: int) -> None:
    """One warning for all the lines that were cut to the model's length (none if none was)."""
    if cut:
        warnings.warn(f"{cut:,} of {lines:,} lines were longer than the model's {max_length} tokens and were cut "
                      f"there: the rest of them is not in their vectors", stacklevel=3)


def embed_shard(job: ShardJob, index: int, first_line: int, texts: list[str], progress=None) -> tuple[int, int]:
    """Embed one shard's texts and write ``part-INDEX.parquet`` atomically; -> (its lines, how many were cut)."""
    from ..nn import threads

    threadpoolctl = import_extra("threadpoolctl")
    # one core per process (Dask runs one process per core), and the bytes must not depend on the cores
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"), threads.alone():
        vectors, cut = embed_texts(loaded_pipeline(job), texts, job.pooling, job.normalize, progress)
    write_shard(Path(job.folder), index, first_line, texts, vectors, job.keep_text, job.settings_sha256)
    return len(texts), cut


# ----------------------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------------------
def embed_corpus(inputs, output, model=None, pooling: str = "mean", normalize: bool = False, batch_size: int = 8,
                 shard_lines: int | None = None, keep_text: bool = False, dask: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Embed every line of ``inputs`` (paths, ``.gz`` or ``-`` for stdin) into Parquet shards in folder ``output``.

    Resumes a previous run of the same job; refuses one made with other settings unless ``overwrite``, and a
    second job writing the same folder at the same time.
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
    job = dataclasses.replace(job, settings_sha256=settings_sha256(manifest["settings"]))
    with writer_lock(folder):
        open_output(folder, manifest, overwrite)
        resumed = len(shard_files(folder))
        total = None if any(entry["path"] == "-" for entry in described) else sum(e["lines"] for e in described)
        with tqdm(total=total, unit=" lines", desc="embed", disable=not progress, file=sys.stderr) as bar:
            todo = unfinished_shards(folder, iter_shards(corpus_lines(described), shard_lines), job.settings_sha256,
                                     bar)
            if dask is None:
                cut = sum(embed_shard(job, index, first_line, texts, bar.update)[1]
                          for index, first_line, texts in todo)
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
# Small jobs: one .npy array
# ----------------------------------------------------------------------------------------------------------------
def embed_to_npy(inputs, output, model=None, pooling: str = "mean", normalize: bool = False, batch_size: int = 8,
                 overwrite: bool = False, progress: bool = True) -> dict:
    """Every line of ``inputs`` -> one [lines, dim] float32 array saved as ``output`` (.npy), written atomically:
    an existing file is replaced (only with ``overwrite``) once the new one is complete. Everything is in memory:
    for small jobs. An empty input gives a [0, dim] array."""
    from .pipelines import pipeline

    if os.path.lexists(output) and not overwrite:
        raise FileExistsError(f"{output} already exists: pass --overwrite (overwrite=True) to replace it")
    texts = list(corpus_lines([{"path": str(source)} for source in (inputs or ["-"])]))
    extract = pipeline("feature-extraction", model=model, batch_size=batch_size)
    with tqdm(total=len(texts), unit=" lines", desc="embed", disable=not progress, file=sys.stderr) as bar:
        vectors, cut = embed_texts(extract, texts, pooling, normalize, bar.update)
    write_atomically(Path(output), lambda f: np.save(f, vectors))
    warn_cut(cut, len(texts), extract.max_length)
    return {"output": str(output), "texts": len(texts), "shape": list(vectors.shape), "pooling": pooling}

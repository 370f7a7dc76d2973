"""What the benchmark scripts share: the two model sizes and where each is saved, the BLAS line, Markdown tables,
and the timing loop (engines alternating run by run, each run after a pause, the median of each engine's runs).

The scripts run as ``python benchmarks/NAME.py``, so this folder is first on ``sys.path`` and ``import common``
finds this file.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"  # the project's assets, beside the checkout; a user's machine has none
SHIPPED = REPO / "weights" / "flaubert_tiny"  # the shipped model: always there

# flaubert_base's architecture (vocab 68,729, 768 x 12 layers x 12 heads), and a tiny one for the tests (seconds,
# not minutes). The tiny vocabulary has the size of the shipped model's (16,000 tokens), so that end_to_end.py --tiny
# can cut real French text with the shipped tokenizer: every id it gives has a row in the embedding table.
BASE = dict(vocab_size=68729, emb_dim=768, n_layers=12, n_heads=12, max_position_embeddings=512)
TINY = dict(vocab_size=16000, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=512)


def architecture(tiny: bool) -> dict:
    return TINY if tiny else BASE


def default_folder(tiny: bool) -> Path:
    """Where the random checkpoint (and its ONNX export) is saved once and reused: one folder per size, so a tiny
    run never picks up, or overwrites, the base model."""
    return Path(tempfile.gettempdir()) / ("minflaubert-bench-tiny" if tiny else "minflaubert-bench-base")


def blas_info() -> str:
    """The BLAS libraries loaded in this process, as threadpoolctl sees them: which kernel ran matters as much as the
    code (an AVX2 and an AVX-512 OpenBLAS differ by 1.7x here, see benchmarks/README.md). Call it after the engines
    are loaded: threadpoolctl lists only the libraries already in memory."""
    from minflaubert.nn.gemm import KERNEL

    ours = f"minflaubert's matrix products: {KERNEL}\n"  # BLAS only where this CPU has no kernel of ours
    try:
        import threadpoolctl
    except ImportError:
        return ours + "BLAS: threadpoolctl not installed"
    libraries = [library for library in threadpoolctl.threadpool_info() if library["user_api"] == "blas"]
    if not libraries:
        return ours + "BLAS: none that threadpoolctl can see"
    return ours + "BLAS: " + "; ".join(
        f"{library['internal_api']} {library.get('version')} (from {owner(library['filepath'])}), kernel "
        f"{library.get('architecture')}, {library['num_threads']} threads" for library in libraries)


def owner(filepath: str) -> str:
    """Which package brought a shared library: wheels keep them in ``numpy.libs/``, ``scipy.libs/``, ``torch/lib/``."""
    folder = Path(filepath).parent
    return folder.parent.name if folder.name == "lib" else folder.name


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A table to paste into a README: ``| a | b |`` lines under a ``|---|---|`` line."""
    lines = ["| " + " | ".join(str(cell) for cell in line) + " |" for line in [header, *rows]]
    return "\n".join([lines[0], "|---" * len(header) + "|", *lines[1:]])


def ratio(numerator: float | None, denominator: float | None) -> str:
    """``numerator / denominator`` to two decimals, or "-" when an engine did not run."""
    return "-" if numerator is None or denominator is None else f"{numerator / denominator:.2f}"


def median_times(engines: dict, runs: int, settle: float) -> dict[str, float]:
    """The median seconds of each engine (a name -> a function of no argument) over ``runs`` runs.

    The engines alternate run by run, so all of them see the same machine load (other work shares this machine).
    Each run starts after ``settle`` seconds of pause: after a call, OpenBLAS's worker threads (ours) and OpenMP's
    (PyTorch's) spin-wait on the cores for a while, and without the pause the next engine would share the cores with
    them (benchmarks/README.md shows by how much).
    """
    times = {name: [] for name in engines}
    for _ in range(runs):
        for name, run in engines.items():
            time.sleep(settle)
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}

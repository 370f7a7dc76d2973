"""Cold start: a fresh process that imports the library, loads the base model and computes one output.

For minflaubert and for transformers + PyTorch, in alternating fresh processes (after one warm-up run of each, so
Numba's compile cache and the OS page cache are warm, as on any second use of a machine): the wall time from
spawning the process to its exit, and its peak resident memory, read by the child itself just before it exits.

Peak memory is ``VmHWM`` of ``/proc/self/status`` (Linux): the high-water mark of the process's own memory map. The
table also shows ``ru_maxrss`` (``resource.getrusage``), which can mislead: Linux keeps it across ``exec`` and
folds into it the peak of the memory map the child replaced, which after a fork (or vfork, as Python's subprocess
does) is its parent's, so a child of a 500 MB process reports at least 500 MB. Where ``/proc`` is missing (macOS),
``ru_maxrss`` is all there is, and the peak column falls back to it.

Uses the checkpoint that ``benchmarks/encoder.py`` saves (``--folder``, the same default); with ``--tiny``, the tiny
one that ``encoder.py --tiny`` saves, built here if missing.

    PYTHONPATH=. python benchmarks/cold_start.py --runs 5

Options: ``--shape 1x16``, ``--threads 2``, ``--folder``, ``--tiny`` (checks that the script works; its figures
mean nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, architecture, default_folder, markdown_table, ratio

CHILD = {
    "minflaubert": """
import numpy as np
from minflaubert.models.model import FlaubertModel
model = FlaubertModel.from_pretrained(FOLDER)
out = model(input_ids=np.full((BATCH, SEQ), 100)).last_hidden_state
""",
    "transformers": """
import torch, transformers
torch.set_num_threads(THREADS)
model = transformers.FlaubertModel.from_pretrained(FOLDER).eval()
with torch.inference_mode():
    out = model(input_ids=torch.full((BATCH, SEQ), 100)).last_hidden_state.numpy()
""",
}
# The child's last line: its two peak-memory figures in MB, and a checksum (the output must be computed).
REPORT = """
import json, resource, sys
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # in KiB on Linux, in bytes on macOS
maxrss /= 2**20 if sys.platform == "darwin" else 2**10
try:
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) / 2**10 for line in status if line.startswith("VmHWM:"))  # "VmHWM: 123 kB"
except (OSError, StopIteration):
    hwm = None
print(json.dumps({"vmhwm_mb": hwm, "maxrss_mb": maxrss, "sum": float(out.sum())}))
"""


def run(engine: str, folder: Path, batch: int, seq: int, threads: int) -> dict:
    """One fresh process of ``engine`` -> {"seconds", "peak_mb" (VmHWM, else ru_maxrss), "maxrss_mb"}."""
    code = CHILD[engine].replace("FOLDER", repr(str(folder))).replace("BATCH", str(batch)).replace("SEQ", str(seq))
    code = code.replace("THREADS", str(threads)) + REPORT
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    report = json.loads(result.stdout.strip().splitlines()[-1])
    peak = report["vmhwm_mb"] if report["vmhwm_mb"] is not None else report["maxrss_mb"]
    return {"seconds": seconds, "peak_mb": peak, "maxrss_mb": report["maxrss_mb"], "vmhwm": report["vmhwm_mb"]}


def tiny_checkpoint(folder: Path) -> None:
    """Build the tiny checkpoint as encoder.py --tiny does, in a fresh process: importing torch here would make
    this process large, and its children's ru_maxrss with it (see the docstring)."""
    build = "import sys, pathlib, encoder, common; encoder.build(pathlib.Path(sys.argv[1]), common.TINY)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), str(REPO)])}
    subprocess.run([sys.executable, "-c", build, str(folder)], env=env, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shape", default="1x16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", help="the checkpoint encoder.py saved (default: encoder.py's, for the size)")
    parser.add_argument("--tiny", action="store_true", help="the tiny model: checks the script runs")
    args = parser.parse_args()
    folder = Path(args.folder) if args.folder else default_folder(args.tiny)
    if not (folder / "model.safetensors").is_file():
        if not args.tiny:
            sys.exit(f"no checkpoint in {folder}: run benchmarks/encoder.py first")
        folder.mkdir(parents=True, exist_ok=True)
        tiny_checkpoint(folder)
    batch, seq = map(int, args.shape.split("x"))
    results = {engine: [] for engine in CHILD}
    for engine in CHILD:  # warm-up: compile cache, page cache
        run(engine, folder, batch, seq, args.threads)
    for _ in range(args.runs):
        for engine in CHILD:
            results[engine].append(run(engine, folder, batch, seq, args.threads))
    print_table(results, args, architecture(args.tiny))


def print_table(results: dict, args, config: dict) -> None:
    """The medians of each engine, and minflaubert's as a ratio to transformers', as a Markdown table."""
    median = {engine: {key: statistics.median(run[key] for run in runs) for key in ("seconds", "peak_mb", "maxrss_mb")}
              for engine, runs in results.items()}
    from_proc = all(run["vmhwm"] is not None for runs in results.values() for run in runs)
    size = "x".join(str(config[key]) for key in ("emb_dim", "n_layers", "n_heads"))
    print(f"fresh process: import + load + first output ({args.shape}, model {size}), median of {args.runs}; "
          f"peak RSS = {'VmHWM of /proc/self/status' if from_proc else 'ru_maxrss (no /proc here)'}"
          + (", TINY model (figures mean nothing)" if args.tiny else ""))
    rows = [[engine, f"{m['seconds']:.2f}", f"{m['peak_mb']:.0f}", f"{m['maxrss_mb']:.0f}"]
            for engine, m in median.items()]
    ours, theirs = median["minflaubert"], median["transformers"]
    rows.append(["ratio (targets 0.50, 0.60)", ratio(ours["seconds"], theirs["seconds"]),
                 ratio(ours["peak_mb"], theirs["peak_mb"]), ratio(ours["maxrss_mb"], theirs["maxrss_mb"])])
    print(markdown_table(["engine", "seconds", "peak RSS MB", "ru_maxrss MB"], rows))


if __name__ == "__main__":
    main()

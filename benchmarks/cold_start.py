"""Cold start: a fresh process that imports the library, loads the base model and computes one output.

For minflaubert and for transformers + PyTorch, in alternating fresh processes (after one warm-up run of each, so
Numba's compile cache and the OS page cache are warm, as on any second use of a machine): the wall time from
spawning the process to its exit, and its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, read
by the child itself just before it exits). Uses the checkpoint that ``benchmarks/encoder.py`` saves.

    python benchmarks/cold_start.py [--runs 5] [--shape 1x16] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
REPORT = """
import resource, json
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "sum": float(out.sum())}))
"""


def run(engine: str, folder: str, batch: int, seq: int, threads: int) -> tuple[float, float]:
    code = CHILD[engine].replace("FOLDER", repr(folder)).replace("BATCH", str(batch)).replace("SEQ", str(seq))
    code = code.replace("THREADS", str(threads)) + REPORT
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return elapsed, report["maxrss_kb"] / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shape", default="1x16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "minflaubert-bench-base"))
    args = parser.parse_args()
    if not (Path(args.folder) / "model.safetensors").is_file():
        sys.exit(f"no checkpoint in {args.folder}: run benchmarks/encoder.py first")
    batch, seq = map(int, args.shape.split("x"))
    results = {engine: [] for engine in CHILD}
    for engine in CHILD:  # warm-up: compile cache, page cache
        run(engine, args.folder, batch, seq, args.threads)
    for _ in range(args.runs):
        for engine in CHILD:
            results[engine].append(run(engine, args.folder, batch, seq, args.threads))
    seconds = {engine: statistics.median(t for t, _ in runs) for engine, runs in results.items()}
    memory = {engine: statistics.median(m for _, m in runs) for engine, runs in results.items()}
    print(f"fresh process: import + load + first output ({args.shape}), median of {args.runs}")
    print(f"{'':14} {'seconds':>8} {'peak RSS MB':>12}")
    for engine in CHILD:
        print(f"{engine:14} {seconds[engine]:8.2f} {memory[engine]:12.0f}")
    print(f"{'ratio':14} {seconds['minflaubert'] / seconds['transformers']:8.2f} "
          f"{memory['minflaubert'] / memory['transformers']:12.2f}   (targets 0.50, 0.60)")


if __name__ == "__main__":
    main()

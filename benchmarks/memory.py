"""Where the resident memory of load + one forward goes, for minflaubert and for transformers + PyTorch.

Each engine runs in a fresh process: import, load the base checkpoint that ``benchmarks/encoder.py`` saves, one
forward of a 1x16 input. The child then reads its own ``/proc/self/status`` (``VmHWM``: the peak resident set) and
``/proc/self/smaps``, and sums the resident kilobytes of every mapping by what is mapped: the checkpoint file, each
large shared library, anonymous memory (the heap, Python objects, NumPy arrays that are not file-backed).

The floor is what this design cannot avoid keeping resident: the weights every token goes through (every tensor of
the checkpoint except the word-embedding table, of which a forward reads only the rows of its tokens), plus the
runtime: Python, NumPy and Numba, measured by a process that only runs one small kernel of ours.

    python benchmarks/memory.py [--folder DIR] [--shape 1x16] [--top 8]

Linux only (it reads /proc).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cold_start
from common import REPO, default_folder

CHILD = {
    # the part of the floor that is not weights: Python and NumPy, then Numba (importing it and loading one of our
    # kernels' machine code from its cache: that starts LLVM, which every kernel call needs)
    "python + numpy": """
import numpy as np
""",
    "python + numpy + numba": """
import numpy as np
from minflaubert.nn import kernels
kernels.bias_gelu(np.ones((64, 8), np.float32), np.ones(64, np.float32))
""",
    **cold_start.CHILD,  # load + one forward: "minflaubert" and "transformers", as the cold-start benchmark runs them
}

# The child's report: its peak, and its resident kB per mapped object (a file's name, or "anonymous").
REPORT = """
import collections, json, os
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
resident, mapping = collections.Counter(), None
for line in open("/proc/self/smaps"):
    fields = line.split()
    if fields[0].endswith(":") and fields[0][:-1].replace("_", "").isalpha():  # a counter line of the mapping
        if fields[0] == "Rss:":
            resident[mapping] += int(fields[1])
    else:  # a new mapping: address range, permissions, offset, device, inode [, path]
        path = fields[5] if len(fields) > 5 else ""
        mapping = os.path.basename(path) if path.startswith("/") else "anonymous"  # [heap], [stack] or none
print(json.dumps({"peak_kb": peak, "resident_kb": resident}))
"""


def floor_bytes(checkpoint: Path) -> int:
    """Bytes of every tensor of the safetensors file but the word embeddings (read from its JSON header)."""
    with open(checkpoint, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    header.pop("__metadata__", None)
    word_embeddings = [name for name in header if name.endswith("embeddings.weight") and "position" not in name]
    return sum(entry["data_offsets"][1] - entry["data_offsets"][0] for name, entry in header.items()
               if name not in word_embeddings)


def measure(engine: str, folder: Path, batch: int, seq: int) -> dict:
    code = CHILD[engine].replace("FOLDER", repr(str(folder))).replace("BATCH", str(batch)).replace("SEQ", str(seq))
    code = code.replace("THREADS", "2")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code + REPORT], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default=str(default_folder(tiny=False)))
    parser.add_argument("--shape", default="1x16")
    parser.add_argument("--top", type=int, default=8, help="mappings listed per engine")
    args = parser.parse_args()
    folder = Path(args.folder)
    if not (folder / "model.safetensors").is_file():
        sys.exit(f"no checkpoint in {folder}: run benchmarks/encoder.py first")
    batch, seq = map(int, args.shape.split("x"))
    weights = floor_bytes(folder / "model.safetensors") / 2**20
    for engine in CHILD:  # warm-up: Numba's cache and the page cache, as on any second use of a machine
        measure(engine, folder, batch, seq)
    reports = {engine: measure(engine, folder, batch, seq) for engine in CHILD}
    peaks = {engine: report["peak_kb"] / 1024 for engine, report in reports.items()}
    runtime = peaks["python + numpy + numba"]
    print(f"load + one forward ({args.shape}), fresh process, peak RSS (VmHWM) in MB\n")
    print("| process | peak RSS (MB) |\n|---|---|")
    for engine, megabytes in peaks.items():
        print(f"| {engine} | {megabytes:.0f} |")
    print(f"\nweights every forward reads (all but the word embeddings): {weights:.0f} MB; "
          f"floor = those + Python, NumPy and Numba ({runtime:.0f} MB) = {weights + runtime:.0f} MB")
    print(f"minflaubert / transformers: {peaks['minflaubert'] / peaks['transformers']:.2f}; "
          f"minflaubert above the floor: {peaks['minflaubert'] - weights - runtime:.0f} MB; "
          f"half of transformers' peak: {peaks['transformers'] / 2:.0f} MB")
    for engine in ("minflaubert", "transformers"):
        report = reports[engine]
        resident = sorted(report["resident_kb"].items(), key=lambda item: -item[1])
        shown = resident[:args.top]
        rest = sum(kb for _, kb in resident[args.top:])
        print(f"\n{engine}: resident at exit, by mapping")
        print("| mapping | MB |\n|---|---|")
        for name, kb in shown + [("everything else", rest)]:
            print(f"| {name} | {kb / 1024:.0f} |")


if __name__ == "__main__":
    main()

"""How fast is minflaubert's FlaubertModel against transformers + PyTorch (and ONNX Runtime) on this CPU?

Builds the flaubert_base architecture (vocab 68,729, 768 x 12 layers x 12 heads) with transformers' random
weights, saves it once (``--folder``, default a folder under the temp dir, reused by later runs), loads it with
minflaubert, and times all engines on the same inputs in ONE process, in alternating runs (so every engine sees the
same machine load): we print the median of ``--runs`` runs of each and minflaubert's (and ONNX Runtime's) time as a
ratio to transformers' (below 1 = faster), then the same figures as a Markdown table to paste into a README. The
engine "fast path, all products on BLAS" is minflaubert with ``gemm.ALL_ON_BLAS`` set (every product and attention
on NumPy's BLAS, as on a CPU without the tiled kernel); "ours/BLAS" is minflaubert's time over it. ONNX
Runtime runs if it is installed (``pip install -e '.[benchmark]'``): the model is exported with
``torch.onnx.export(..., dynamo=True)``, intra-op spinning off. The BLAS line says which BLAS library and which of
its kernels ran (threadpoolctl, if installed).

    PYTHONPATH=. python benchmarks/encoder.py --runs 5

Options: ``--threads 2``, ``--shapes 1x16,1x128,8x128,1x512,padded``, ``--no-onnx``, ``--settle 0.2``, and
``--tiny``: a tiny architecture (64 x 2 layers x 4 heads) on small shapes, saved in its own folder; it checks that
the script works (the tests run it), its times mean nothing.

Each timed run starts after a pause (``--settle`` seconds): after a call, OpenBLAS's worker threads (ours) and
OpenMP's (PyTorch's) keep spin-waiting on the cores for a while, and without the pause the next engine in the
alternation would share the 2 cores with them. The pause lets every engine start on idle cores.

Also printed: GFLOP/s (multiply-adds of the linear layers and attention over the real tokens, x2), as a percentage
of what NumPy's BLAS reaches on a large [512, 768] x [768, 3072] product with the same threads (a reference, not a
limit: minflaubert's products do not go through NumPy's BLAS on a CPU with AVX2 or AVX-512).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import BASE, architecture, blas_info, default_folder, markdown_table, median_times, ratio

SHAPES = {"1x16": (1, 16), "1x128": (1, 128), "8x128": (8, 128), "1x512": (1, 512), "padded": (8, 128)}
TINY_SHAPES = {"1x16": (1, 16), "4x32": (4, 32), "padded": (4, 32)}
ALL_ON_BLAS = "fast path, all products on BLAS"  # the engine (and column) of all_on_blas below
TARGETS = {"1x16": 0.45, "1x128": 0.75, "8x128": 0.85, "1x512": 0.90, "padded": 0.65}  # ours/torch, base model


def build(folder: Path, config: dict = BASE):
    """The architecture ``config`` with transformers' random weights, saved to ``folder`` (once)."""
    import torch
    import transformers

    if not (folder / "model.safetensors").is_file():
        torch.manual_seed(0)
        model = transformers.FlaubertModel(transformers.FlaubertConfig(**config)).eval()
        model.save_pretrained(str(folder))
    return transformers.FlaubertModel.from_pretrained(str(folder)).eval()


def make_inputs(name: str, rng, config: dict = BASE, shapes: dict = SHAPES) -> dict:
    batch, seq_len = shapes[name]
    ids = rng.integers(5, config["vocab_size"], size=(batch, seq_len))
    mask = np.ones((batch, seq_len), dtype=np.int64)
    if name == "padded":  # sequences of random lengths seq_len/8..seq_len (16..128 for 8x128), right-padded (pad id 2)
        lengths = rng.integers(seq_len // 8, seq_len + 1, size=batch)
        mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
        ids[mask == 0] = 2
    return dict(input_ids=ids, attention_mask=mask)


def flops(inputs: dict, config=BASE, attention=True) -> float:
    """2 x multiply-adds of the linear layers and attention, over the real tokens only."""
    dim, layers = config["emb_dim"], config["n_layers"]
    lengths = inputs["attention_mask"].sum(axis=1)
    linear = 2 * (4 * dim * dim + 2 * dim * 4 * dim) * lengths.sum()
    attention = 2 * 2 * dim * np.square(lengths).sum() if attention else 0
    return float(layers * (linear + attention))


def numpy_sgemm_rate(repeats: int = 10) -> float:
    a = np.random.default_rng(0).standard_normal((512, 768), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((3072, 768), dtype=np.float32)
    out = np.empty((512, 3072), np.float32)
    np.matmul(a, w.T, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, w.T, out=out)
        times.append(time.perf_counter() - start)
    return 2 * 512 * 768 * 3072 / min(times) / 1e9


def onnx_session(model, folder: Path, threads: int):
    """An ONNX Runtime session on the model exported to ``folder/model.onnx`` (once), or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import torch

    path = folder / "model.onnx"
    if not path.is_file():
        ids = torch.ones((2, 16), dtype=torch.long)
        batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=512)
        torch.onnx.export(model, (ids, torch.ones((2, 16), dtype=torch.long)), str(path), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), external_data=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", help="comma-separated (default: all of the size's shapes)")
    parser.add_argument("--folder", help="where the checkpoint is saved once (default: one per size, in the temp dir)")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on small shapes: checks the script runs")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="seconds of pause before each timed run (0 to run back to back)")
    args = parser.parse_args()
    args.config = architecture(args.tiny)
    args.shape_table = TINY_SHAPES if args.tiny else SHAPES
    args.shapes = (args.shapes or ",".join(args.shape_table)).split(",")
    args.folder = Path(args.folder) if args.folder else default_folder(args.tiny)
    return args


def load_engines(args) -> dict:
    """Each engine as a function: inputs (NumPy arrays) -> the last hidden state (a NumPy array)."""
    import torch

    from minflaubert.models.model import FlaubertModel

    torch.set_num_threads(args.threads)
    args.folder.mkdir(parents=True, exist_ok=True)
    reference = build(args.folder, args.config)
    ours = FlaubertModel.from_pretrained(args.folder)
    session = None if args.no_onnx else onnx_session(reference, args.folder, args.threads)

    def run_torch(inputs):
        with torch.inference_mode():
            return reference(**{k: torch.from_numpy(v) for k, v in inputs.items()}).last_hidden_state.numpy()

    def run_ours(inputs):
        return ours(**inputs).last_hidden_state

    engines = {"transformers": run_torch, "minflaubert": run_ours, ALL_ON_BLAS: all_on_blas(run_ours)}
    if session is not None:
        engines["onnxruntime"] = lambda inputs: session.run(None, inputs)[0]
    return engines


def all_on_blas(run):
    """``run`` with every product of minflaubert's fast path (attention's too) on NumPy's BLAS, as on a CPU without
    the tiled kernel: ``gemm.ALL_ON_BLAS`` set for the call. The tiled kernel must never be the slower."""
    from minflaubert.nn import gemm

    def run_on_blas(inputs):
        gemm.ALL_ON_BLAS = True
        try:
            return run(inputs)
        finally:
            gemm.ALL_ON_BLAS = False
    return run_on_blas


def check_outputs(engines: dict, inputs: dict, name: str) -> None:
    """Every engine's output equals transformers' at the real (not padded) positions. Also the warm-up run."""
    expected = engines["transformers"](inputs)
    keep = inputs["attention_mask"][..., None].astype(bool)
    for engine, run in engines.items():
        error = float(np.abs(np.where(keep, run(inputs) - expected, 0)).max())
        assert error < 1e-3, f"{engine} differs from transformers by {error} at {name}"


def main():
    args = parse_args()
    engines = load_engines(args)
    blas_rate = numpy_sgemm_rate()
    print(f"threads {args.threads}, runs {args.runs}, NumPy's sgemm {blas_rate:.0f} GFLOP/s (512x768x3072), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, settle {args.settle} s"
          + (", TINY model (times mean nothing)" if args.tiny else ""))
    print(blas_info())
    onnx = "onnxruntime" in engines
    header = f"{'shape':8} {'GFLOP':>6} " + " ".join(f"{name + ' ms':>15}" for name in engines)
    header += (f" {'ours/BLAS':>9} {'ours/torch':>10} {'target':>6}" + (" onnx/torch" if onnx else "")
               + "  ours GFLOP/s (% of NumPy's sgemm)")
    print(header)
    rng = np.random.default_rng(0)
    rows = []
    for name in args.shapes:
        inputs = make_inputs(name, rng, args.config, args.shape_table)
        check_outputs(engines, inputs, name)
        median = median_times({engine: (lambda run=run: run(inputs)) for engine, run in engines.items()},
                              args.runs, args.settle)
        gflop = flops(inputs, args.config) / 1e9
        rate = gflop / median["minflaubert"]
        target = "-" if args.tiny else f"{TARGETS[name]:.2f}"  # the targets are the base model's
        line = f"{name:8} {gflop:6.1f} " + " ".join(f"{median[e] * 1e3:15.1f}" for e in engines)
        line += (f" {ratio(median['minflaubert'], median[ALL_ON_BLAS]):>9}"
                 f" {ratio(median['minflaubert'], median['transformers']):>10} {target:>6}")
        if onnx:
            line += f" {ratio(median['onnxruntime'], median['transformers']):>10}"
        print(line + f"  {rate:6.0f} ({100 * rate / blas_rate:.0f} %)", flush=True)
        rows.append(markdown_row(name, median, target))
    print()
    print(markdown_table(["shape", *(f"{e} ms" for e in engines), "ours/BLAS", "ours/torch", "target", "onnx/torch",
                          "ours/onnx"], rows))


def markdown_row(name: str, median: dict, target: str) -> list:
    """One shape's line of the Markdown table: the times in ms, then the ratios ("-" without ONNX Runtime)."""
    onnx = median.get("onnxruntime")
    return [name, *(f"{seconds * 1e3:.1f}" for seconds in median.values()),
            ratio(median["minflaubert"], median[ALL_ON_BLAS]), ratio(median["minflaubert"], median["transformers"]),
            target, ratio(onnx, median["transformers"]), ratio(median["minflaubert"], onnx)]


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

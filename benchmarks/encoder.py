"""How fast is minflaubert's FlaubertModel against transformers + PyTorch (and ONNX Runtime) on this CPU?

Builds the flaubert_base architecture (vocab 68,729, 768 x 12 layers x 12 heads) with transformers' random
weights, saves it once (``--folder``, default a folder under the temp dir, reused by later runs), loads it with
minflaubert, and times all engines on the same inputs in ONE process, in alternating runs (so every engine sees the
same machine load): we print the median of ``--runs`` runs of each and minflaubert's (and ONNX Runtime's) time as a
ratio to transformers' (below 1 = faster). ONNX Runtime runs if it is installed (``pip install -e '.[benchmark]'``):
the model is exported with ``torch.onnx.export(..., dynamo=True)``, intra-op spinning off.

    python benchmarks/encoder.py [--runs 5] [--threads 2] [--shapes 1x16,1x128,8x128,1x512,padded] [--no-onnx]
                                 [--settle 0.2]

Each timed run starts after a pause (``--settle`` seconds): after a call, OpenBLAS's worker threads (ours) and
OpenMP's (PyTorch's) keep spin-waiting on the cores for a while, and without the pause the next engine in the
alternation would share the 2 cores with them. The pause lets every engine start on idle cores.

Also printed: GFLOP/s (multiply-adds of the linear layers and attention over the real tokens, x2) against the sgemm
limit (NumPy's BLAS on a large [512, 768] x [768, 3072] product, same threads).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

BASE = dict(vocab_size=68729, emb_dim=768, n_layers=12, n_heads=12, max_position_embeddings=512)
SHAPES = {"1x16": (1, 16), "1x128": (1, 128), "8x128": (8, 128), "1x512": (1, 512), "padded": (8, 128)}
TARGETS = {"1x16": 0.45, "1x128": 0.75, "8x128": 0.85, "1x512": 0.90, "padded": 0.65}


def build(folder: Path):
    """The base architecture with transformers' random weights, saved to ``folder`` (once)."""
    import torch
    import transformers

    if not (folder / "model.safetensors").is_file():
        torch.manual_seed(0)
        model = transformers.FlaubertModel(transformers.FlaubertConfig(**BASE)).eval()
        model.save_pretrained(str(folder))
    return transformers.FlaubertModel.from_pretrained(str(folder)).eval()


def make_inputs(name: str, rng) -> dict:
    batch, seq_len = SHAPES[name]
    ids = rng.integers(5, BASE["vocab_size"], size=(batch, seq_len))
    mask = np.ones((batch, seq_len), dtype=np.int64)
    if name == "padded":  # 8 sequences of random lengths 16..128, right-padded (pad id 2)
        lengths = rng.integers(16, 129, size=batch)
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


def sgemm_limit(repeats: int = 10) -> float:
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "minflaubert-bench-base"))
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="seconds of pause before each timed run (0 to run back to back)")
    args = parser.parse_args()

    import torch

    from minflaubert.models.model import FlaubertModel

    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = build(folder)
    ours = FlaubertModel.from_pretrained(folder)
    session = None if args.no_onnx else onnx_session(reference, folder, args.threads)
    limit = sgemm_limit()
    print(f"threads {args.threads}, runs {args.runs}, sgemm limit {limit:.0f} GFLOP/s (NumPy BLAS, 512x768x3072), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"settle {args.settle} s")

    def run_torch(inputs):
        with torch.inference_mode():
            return reference(**{k: torch.from_numpy(v) for k, v in inputs.items()}).last_hidden_state.numpy()

    def run_ours(inputs):
        return ours(**inputs).last_hidden_state

    def run_onnx(inputs):
        return session.run(None, inputs)[0]

    engines = {"transformers": run_torch, "minflaubert": run_ours}
    if session is not None:
        engines["onnxruntime"] = run_onnx
    rng = np.random.default_rng(0)
    header = f"{'shape':8} {'GFLOP':>6} " + " ".join(f"{name + ' ms':>15}" for name in engines)
    header += f" {'ours/torch':>10} {'target':>6}" + (" onnx/torch" if session else "") + "  ours GFLOP/s (% limit)"
    print(header)
    for name in args.shapes.split(","):
        inputs = make_inputs(name, rng)
        expected = run_torch(inputs)
        keep = inputs["attention_mask"][..., None].astype(bool)
        for engine, run in engines.items():  # warm-up, and outputs equal at the real positions
            error = float(np.abs(np.where(keep, run(inputs) - expected, 0)).max())
            assert error < 1e-3, f"{engine} differs from transformers by {error} at {name}"
        times = {engine: [] for engine in engines}
        for _ in range(args.runs):
            for engine, run in engines.items():
                time.sleep(args.settle)  # the previous engine's idle threads stop spin-waiting (see the docstring)
                start = time.perf_counter()
                run(inputs)
                times[engine].append(time.perf_counter() - start)
        median = {engine: statistics.median(t) for engine, t in times.items()}
        ratio = median["minflaubert"] / median["transformers"]
        gflop = flops(inputs) / 1e9
        rate = gflop / median["minflaubert"]
        line = f"{name:8} {gflop:6.1f} " + " ".join(f"{median[e] * 1e3:15.1f}" for e in engines)
        line += f" {ratio:10.2f} {TARGETS[name]:6.2f}"
        if session is not None:
            line += f" {median['onnxruntime'] / median['transformers']:10.2f}"
        print(line + f"  {rate:6.0f} ({100 * rate / limit:.0f} %)", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

"""Many threads calling one model at once (a server): total time of N calls made one after the other, and made by
T threads at once, on one shared model.

A random post-norm model of 256 x 3 layers x 4 heads (vocabulary 1,000), inputs of 4 x 100 tokens. What competes
for the cores: the calling threads themselves, minflaubert's helper thread(s) (``minflaubert/nn/threads.py``: one
caller at a time gets them, the others compute alone) and, on CPUs where minflaubert falls back to it, OpenBLAS's
threads.

    python benchmarks/threads.py [--calls 48] [--threads 8]
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=48)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from minflaubert import FlaubertConfig, FlaubertModel
    from minflaubert.nn.gemm import KERNEL

    model = FlaubertModel(FlaubertConfig(vocab_size=1000, emb_dim=256, n_layers=3, n_heads=4))
    inputs = np.random.default_rng(0).integers(5, 1000, size=(args.calls, 4, 100))
    expected = [model(input_ids=ids).last_hidden_state for ids in inputs[:2]]  # warm-up, and the reference

    start = time.perf_counter()
    for ids in inputs:
        model(input_ids=ids)
    in_a_row = time.perf_counter() - start

    outputs = [None] * args.calls

    def work(worker):
        for call in range(worker, args.calls, args.threads):
            outputs[call] = model(input_ids=inputs[call]).last_hidden_state

    workers = [threading.Thread(target=work, args=(worker,)) for worker in range(args.threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    at_once = time.perf_counter() - start
    assert all(np.array_equal(outputs[i], expected[i]) for i in range(2)), "a threaded call differs"
    print(f"matrix products: {KERNEL}")
    print(f"{args.calls} calls of 4 x 100 tokens (256 x 3 layers): {in_a_row:.2f} s one after the other, "
          f"{at_once:.2f} s from {args.threads} threads at once")


if __name__ == "__main__":
    main()

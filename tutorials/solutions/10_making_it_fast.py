"""Lesson 10, exercises: packable masks, the fused residual + LayerNorm, timing the three paths."""
import time

import numpy as np

from minflaubert import FlaubertConfig, FlaubertModel
from minflaubert.nn import fast, kernels, layers

# 1. A causal model attends only to keys at or before the query. Packing removes the padding and numbers the
# tokens of each text from 0: with right padding, nothing before a real token changes. With left padding, the
# reference (transformers) lets a real token attend to the padded keys before it, which packing would drop, so the
# fast path refuses such a mask and the readable loop runs instead (path "kernels": the output says so).
causal = FlaubertConfig(vocab_size=100, emb_dim=32, n_layers=1, n_heads=4, causal=True)
right = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
left = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=bool)
assert fast.packable(causal, right) and not fast.packable(causal, left)
bidirectional = FlaubertConfig(vocab_size=100, emb_dim=32, n_layers=1, n_heads=4)
assert fast.packable(bidirectional, left)  # every query sees exactly the real keys of its row: any mask packs
print("right-padded causal packs:", fast.packable(causal, right), "; left-padded:", fast.packable(causal, left))
causal_model = FlaubertModel(causal)
ran = [causal_model(np.full((2, 4), 7), attention_mask=mask).execution_path for mask in (right, left)]
assert ran == ["fast", "kernels"]
print(f"right-padded causal ran {ran[0]!r}; left-padded ran {ran[1]!r}")

# 2. residual_layer_norm on [dim, tokens] == layer_norm(x + y + b) on [tokens, dim].
rng = np.random.default_rng(0)
dim, tokens = 32, 10
x, y = (rng.normal(size=(dim, tokens)).astype(np.float32) for _ in range(2))
bias, gamma, beta = (rng.normal(size=dim).astype(np.float32) for _ in range(3))
expected = layers.layer_norm((x + y + bias[:, None]).T, {"weight": gamma, "bias": beta}, 1e-12).T
out = kernels.residual_layer_norm(x.copy(), y, bias, gamma, beta, np.float32(1e-12))
assert np.allclose(out, expected, atol=1e-5)
print("residual + LayerNorm kernel == readable:", np.allclose(out, expected, atol=1e-5))

# 3. Timing the three paths (the numbers vary from machine to machine and run to run).
model = FlaubertModel(FlaubertConfig(vocab_size=1000, emb_dim=128, n_layers=4, n_heads=8))
ids = rng.integers(14, 1000, size=(1, 128))


def best_of(call, repeats=5):
    call()  # warm-up: compilation, buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


times = {}
for path in ("fast", "kernels", "reference"):
    model.path = path
    times[path] = best_of(lambda: model(ids))
fast_time, kernel_time, numpy_time = times["fast"], times["kernels"], times["reference"]
print(f"NumPy {numpy_time * 1e3:.1f} ms, Numba kernels {kernel_time * 1e3:.1f} ms, fast path {fast_time * 1e3:.1f} ms:"
      f" {numpy_time / fast_time:.1f}x")

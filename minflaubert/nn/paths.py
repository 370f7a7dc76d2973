"""The three executions of the encoder, by name: ``"fast"``, ``"kernels"`` and ``"reference"``.

They compute one function, FlauBERT's forward pass, with the same weights and the same math; only the way the
work is laid out changes. Tests hold them equal to float32 rounding (tests/test_kernels.py, test_properties.py,
test_parity_encoder.py and test_golden.py run each path by name), and all three are compared with transformers.

* ``"reference"``: the readable loop of ``models/model.py`` over the plain-NumPy layers of ``layers.py``. One
  function per idea, ``[batch, seq, dim]`` arrays, padding computed and then zeroed. Slow, but it is the lesson
  and the oracle the other two are tested against.
* ``"kernels"``: the same loop, with attention and GELU compiled by Numba (``kernels.py``): one pass per query row
  instead of several whole ``[batch, heads, q, k]`` tensors. It does all the reference does (attention maps, a
  key/value ``cache`` for incremental decoding), which is why a "fast" call that asks for those runs it instead.
* ``"fast"`` (the default): ``fast.py``, the packed encoder. Only the real tokens are computed, activations are
  feature-major ``[dim, tokens]``, every matrix product goes to a tiled kernel compiled for the CPU
  (``gemm.py``, shared between threads) and the steps between them are small fused Numba passes over reused
  buffers. It keeps no attention maps and no cache, so ``path_to_run`` hands those calls
  to ``"kernels"``.

A model runs ``model.path`` (``FlaubertModel(config, path="kernels")``, or set it later), and every output says
which execution computed it: ``output.execution_path``.
"""
from __future__ import annotations

import numpy as np

from . import fast, kernels, layers

PATHS = ("fast", "kernels", "reference")


def check_path(name) -> str:
    """``name`` if it is one of PATHS, else a ValueError naming the valid choices."""
    if not isinstance(name, str) or name not in PATHS:
        raise ValueError(f"path must be one of {', '.join(map(repr, PATHS))}, got {name!r}")
    return name


def path_to_run(requested: str, config, mask: np.ndarray, cache=None, output_attentions: bool = False) -> str:
    """The path that computes this call: the one requested, except that "fast" hands over to "kernels" when it
    cannot give what is asked. ``mask`` [batch, seq] bool: the real tokens (``layers.padding_mask``)."""
    check_path(requested)
    if requested != "fast":
        return requested
    if cache is not None:  # incremental decoding: the packed encoder keeps no keys and values
        return "kernels"
    if output_attentions:  # it never builds the [batch, heads, seq, seq] attention maps
        return "kernels"
    if not fast.packable(config, mask):  # causal with left padding: the reference attends to padded keys
        return "kernels"
    return "fast"


def layer_functions(path: str, config) -> tuple:
    """The readable loop's attention and activation for ``path`` ("kernels" or "reference") -> (attend, activation).

    attend: (q, k, v [batch, heads, len, head_dim], mask [batch, q_len, k_len]) -> (context, weights);
    activation: [...] -> [...]. ReLU has no kernel: both paths use NumPy's.
    """
    if path not in ("kernels", "reference"):
        raise ValueError(f"the readable loop runs path 'kernels' or 'reference', not {path!r}")
    compiled = path == "kernels"
    attend = kernels.scaled_dot_product_attention if compiled else layers.scaled_dot_product_attention
    if not config.gelu_activation:
        return attend, layers.relu
    return attend, kernels.gelu if compiled else layers.gelu

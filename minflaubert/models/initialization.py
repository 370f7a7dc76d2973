"""Fresh weights for a model built from a config alone, drawn as transformers draws them."""
from __future__ import annotations

import numpy as np

from ..nn.layers import sinusoidal_position_table


def init_weights(shapes: dict[str, tuple], config, seed: int = 0) -> dict[str, np.ndarray]:
    """Fresh weights, as transformers initialises them: what a model built from a config alone starts with.

    Linear weights ~ N(0, init_std) and biases 0; embedding tables ~ N(0, embed_init_std) with the padding row 0
    (or the sinusoidal table for positions when the config asks for it); LayerNorms scale 1, shift 0.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        module, _, kind = name.rpartition(".")
        if "layer_norm" in module or "LayerNorm" in module:
            array = np.ones(shape) if kind == "weight" else np.zeros(shape)
        elif kind == "bias":
            array = np.zeros(shape)
        elif module.endswith("embeddings"):
            array = rng.normal(0.0, config.embed_init_std, shape)
            if module == "embeddings":
                array[config.pad_index] = 0.0
            if module == "position_embeddings" and config.sinusoidal_embeddings:
                array = sinusoidal_position_table(*shape)
        else:
            array = rng.normal(0.0, config.init_std, shape)
        weights[name] = array.astype(np.float32)
    return weights

"""The numerical reference: random transformers models, saved with save_pretrained, and their outputs.

Used in-process by the parity tests (transformers 5.23), and as a script run by another Python that has a
different transformers (4.57.6, which still runs pre-norm models):

    python tests/reference.py SPEC.json OUT.npz

SPEC.json: {"folder", "class_name", "config", "inputs" (lists), "call" (keyword flags), "seed", "save" (bool)}, or
{"pretrained": a folder, "class_name", "inputs", "call"} to run a saved model loaded with default arguments.
OUT.npz: the outputs flattened to arrays: last_hidden_state, hidden_states.0, attentions.3, logits, loss, ...
This file is test support: it imports torch, the package never does.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def build_model(class_name: str, config: dict, seed: int = 0):
    """A transformers model with random weights whose LayerNorms and biases are perturbed away from 1 and 0."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(transformers.FlaubertConfig(**config)).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def run_model(model, inputs: dict, call: dict) -> dict[str, np.ndarray]:
    """Run the forward pass and flatten its output fields to {name: array}."""
    import torch

    tensors = {}
    for name, value in inputs.items():
        array = np.asarray(value)
        tensors[name] = torch.tensor(array, dtype=torch.float32 if array.dtype.kind == "f" else torch.long)
        if name in ("labels", "is_impossible") and array.dtype.kind == "f":
            tensors[name] = torch.tensor(array, dtype=torch.float32)
    with torch.no_grad():
        output = model(**tensors, **call, return_dict=True)
    flat = {}
    for name, value in output.items():
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                flat[f"{name}.{i}"] = item.detach().numpy()
        elif value is not None:
            flat[name] = value.detach().numpy()
    return flat


def make_case(folder, class_name: str, config: dict, inputs: dict, call: dict | None = None, seed: int = 0,
              save: bool = True) -> dict[str, np.ndarray]:
    """Build, perturb, save_pretrained to ``folder``, run: the reference outputs for one parity case."""
    model = build_model(class_name, config, seed)
    if save:
        model.save_pretrained(str(folder))
    return run_model(model, inputs, call or {})


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    if "pretrained" in spec:
        import transformers

        model = getattr(transformers, spec["class_name"]).from_pretrained(spec["pretrained"]).eval()
        np.savez(out_path, **run_model(model, spec["inputs"], spec.get("call") or {}))
        return
    outputs = make_case(spec["folder"], spec["class_name"], spec["config"], spec["inputs"], spec.get("call"),
                        spec.get("seed", 0), spec.get("save", True))
    np.savez(out_path, **outputs)


if __name__ == "__main__":
    main(*sys.argv[1:])

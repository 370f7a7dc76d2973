"""Golden fixtures: transformers' outputs for tiny checkpoints, committed, so that `pytest` checks the numbers on a
machine without torch. Made by scripts/make_fixtures.py (see there); each case runs on every execution path, named in
its test id ([fast], [kernels], [reference]). The fast path keeps no attention maps: its cases compare the rest."""
import json

import numpy as np
import pytest

import minflaubert
from conftest import FIXTURES, compare_outputs, flatten_output
from minflaubert.nn.paths import PATHS

CHECKPOINTS = sorted(path.name for path in FIXTURES.glob("tiny-*") if (path / "reference.npz").exists())


def calls(folder):
    """reference.npz -> {call name: (inputs, outputs)}"""
    stored = np.load(folder / "reference.npz")
    grouped = {}
    for key in stored.files:
        call, kind, name = key.split("/")
        grouped.setdefault(call, ({}, {}))[kind == "outputs"][name] = stored[key]
    return grouped


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_golden_fixture(name, path):
    folder = FIXTURES / name
    class_name = json.loads((folder / "config.json").read_text())["architectures"][0]
    model = getattr(minflaubert, class_name).from_pretrained(folder, path=path)
    for call, (inputs, expected) in calls(folder).items():
        pre_norm = model.config.pre_norm  # the reference for pre-norm (transformers 4.57.6) gives no attentions
        attentions = not pre_norm and path != "fast"  # asked for, they would make a "fast" call run "kernels"
        output = model(**inputs, output_hidden_states=True, output_attentions=attentions)
        assert output.execution_path == path
        compare_outputs(flatten_output(output), expected, f"golden {name} {call}",
                        skip=() if attentions else ("attentions",))

"""Every name that transformers' own signatures offer is accepted here, or listed in the README's table of differences.

The walk reads ``inspect.signature`` of ``FlaubertConfig.__init__``, of the seven models' ``forward``, of
``FlaubertTokenizer.__init__`` and of its ``__call__``, in transformers 5.23 (this Python) and in 4.57.6
(``MINFLAUBERT_TRANSFORMERS4_PYTHON``: its signatures still name ``head_mask`` and ``cache_position``). A name is
accepted when our signature has it; for ``FlaubertConfig``, whose ``__init__`` takes ``**values``, when
``FlaubertConfig(name=transformers' default)`` raises no "unexpected keyword argument".

The README's table is the one list of differences: a row covers the keywords written bare, ``name=``, in
backquotes in its first column (``FlaubertConfig(dtype=, ...)``, ``head_mask=``), and links the test that pins it
(``[test_name](tests/test_file.py)``), which must exist.
"""
import inspect
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import minflaubert
from conftest import REPO, require
from minflaubert import FlaubertConfig, FlaubertTokenizer

MODELS = ["FlaubertModel", "FlaubertWithLMHeadModel", "FlaubertForSequenceClassification",
          "FlaubertForTokenClassification", "FlaubertForQuestionAnsweringSimple", "FlaubertForQuestionAnswering",
          "FlaubertForMultipleChoice"]


def signatures(transformers, models) -> dict:
    """{where: {parameter name: its default}} for transformers' signatures (this source also runs under 4.57.6)."""
    import inspect

    def parameters(function):
        return {name: (p.default if p.default is not p.empty else None) for name, p in
                inspect.signature(function).parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    found = {"FlaubertConfig": parameters(transformers.FlaubertConfig.__init__),
             "FlaubertTokenizer": parameters(transformers.FlaubertTokenizer.__init__),
             "FlaubertTokenizer.__call__": parameters(transformers.FlaubertTokenizer.__call__)}
    found.update({f"{name}.forward": parameters(getattr(transformers, name).forward) for name in models})
    return found


def signatures_in(python: str) -> dict:
    """``signatures`` run by another Python, with its own transformers."""
    script = (f"{inspect.getsource(signatures)}\nimport json, transformers\n"
              f"print(json.dumps(signatures(transformers, {MODELS!r}), default=repr))")
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": ""})
    return json.loads(done.stdout.strip().splitlines()[-1])


def accepts(where: str, name: str, default) -> bool:
    """Whether our counterpart of ``where`` (a class or a ``Class.method``) takes the keyword ``name``."""
    if where == "FlaubertConfig":
        try:
            FlaubertConfig(**{name: default})
        except TypeError as error:
            return "unexpected keyword argument" not in str(error)
        except ValueError:  # taken, then refused for its value
            return True
        return True
    owner, _, method = where.partition(".")
    function = getattr(FlaubertTokenizer if owner == "FlaubertTokenizer" else getattr(minflaubert, owner),
                       {"": "__init__", "forward": "__call__"}.get(method, method))
    parameter = inspect.signature(function).parameters.get(name)
    return parameter is not None and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)


def differences_table() -> list[list[str]]:
    """The rows of the README's "Differences from transformers" table, as lists of cells."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Differences from transformers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # without the header


def listed_names() -> set[str]:
    """The names the table covers: the keywords written bare (``name=``, no value) in backquotes in a first column."""
    return {name for row in differences_table() for quoted in re.findall(r"`([^`]*)`", row[0])
            for name in re.findall(r"(\w+)=(?=[,)\s]|$)", quoted)}


def missing_names(signatures: dict) -> list[str]:
    listed = listed_names()
    return [f"{where}: {name}" for where, parameters in signatures.items() for name, default in parameters.items()
            if not accepts(where, name, default) and name not in listed]


def test_every_name_of_transformers_5_signatures_is_accepted_or_listed(transformers):
    assert missing_names(signatures(transformers, MODELS)) == []


def test_every_name_of_transformers_4_signatures_is_accepted_or_listed():
    python = os.environ.get("MINFLAUBERT_TRANSFORMERS4_PYTHON", "")
    require(bool(python) and Path(python).exists(),
            "MINFLAUBERT_TRANSFORMERS4_PYTHON must name a Python with transformers==4.57.6 (.ci/run sets it up)")
    assert missing_names(signatures_in(python)) == []


@pytest.mark.parametrize("row", differences_table(), ids=lambda row: row[0][:40])
def test_each_difference_names_what_and_links_an_existing_test(row):
    what, theirs, ours, why, tests = row
    assert re.search(r"`[^`]+`", what), f"the row names nothing in backquotes: {what}"
    assert theirs and ours and why, f"the row {what} leaves a cell empty"
    links = re.findall(r"\[(test_\w+)\]\((tests/test_\w+\.py)\)", tests)
    assert links, f"the row {what} links no test"
    for name, path in links:
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(encoding="utf-8"), re.M), \
            f"{path} has no test {name}"

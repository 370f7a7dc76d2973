"""Hostile and damaged files (issue 29, findings 8, 9 and 10): each fails at once, in one line naming the file.

- a ``config.json`` with absurd sizes (``n_layers: 1000000``, ``num_labels: 10**9``) is refused before anything is
  built from it: in a child process under a memory ceiling and a time limit;
- a safetensors file that the ``safetensors`` library refuses (overlapping tensors, holes, trailing bytes...) is
  refused here too: every case is checked against the library itself;
- every JSON file the command line reads, and a damaged ``.gz`` input, gives ``minflaubert COMMAND: error: ...``:
  one line naming the file (and the field), status 1, no traceback.

The .bin files that declare gigabytes (finding 7) are in test_torch_pickle.py.
"""
import gzip
import json
import os
import resource
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open

from conftest import FIXTURES, REPO
from minflaubert import FlaubertConfig
from minflaubert.checkpoints.weights import read_safetensors
from minflaubert.models.config import LIMITS

LM = FIXTURES / "tiny-lm"  # a small checkpoint with a tokenizer and an LM head


def _cap_memory():
    """In the child, before it runs: 1 GiB of address space at most (a MemoryError past it, never a swap)."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(*args, timeout=60) -> subprocess.CompletedProcess:
    """``minflaubert ARGS`` in a fresh process under the memory ceiling; an endless command fails the test."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minflaubert", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout, preexec_fn=_cap_memory)


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    """Status 1, nothing on stdout, and one line on stderr holding every fragment (no traceback)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr[-3000:]
    assert result.stderr.startswith(f"minflaubert {command}: error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture
def model(tmp_path):
    """A copy of the tiny LM checkpoint, to be damaged by the test."""
    return shutil.copytree(LM, tmp_path / "model")


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ---------------------------------------------------------------------------------------------- finding 8
@pytest.mark.parametrize("changes, fragment", [
    ({"n_layers": 1_000_000}, "n_layers must be <= 1024 (minflaubert's limit), got 1000000"),
    ({"num_labels": 10**9, "id2label": None, "label2id": None}, "num_labels must be <= 1000000"),
    ({"emb_dim": 2**20, "n_heads": 4}, "emb_dim must be <= 65536"),
    ({"vocab_size": 10**12}, "vocab_size must be <= 16777216"),
    ({"max_position_embeddings": 10**9}, "max_position_embeddings must be <= 1048576"),
], ids=["n_layers", "num_labels", "emb_dim", "vocab_size", "positions"])
def test_absurd_sizes_are_refused_before_anything_is_built(model, changes, fragment):
    """n_layers: 1000000 spent 42 s naming weights, then a MemoryError; num_labels: 10**9 built a billion labels."""
    _edit_json(model / "config.json", **changes)
    assert_one_line_error(run("info", model, timeout=30), "info", f"{model / 'config.json'}: {fragment}")


@pytest.mark.parametrize("field, value, fragment", [
    ("n_layers", 2.5, "n_layers must be an integer, got 2.5"),
    ("n_heads", -4, "n_heads must be >= 1, got -4"),
    ("emb_dim", True, "emb_dim must be an integer, got True"),
    ("n_layers", "1e400", "n_layers must be an integer, got inf"),  # (JSON's 1e400 reads as infinity)
], ids=["float", "negative", "bool", "infinite"])
def test_config_fields_that_are_not_sizes_name_the_file_and_field(model, field, value, fragment):
    text = json.dumps({**json.loads((model / "config.json").read_text()), field: value})
    (model / "config.json").write_text(text.replace('"1e400"', "1e400"))
    assert_one_line_error(run("info", model), "info", f"{model / 'config.json'}: {fragment}")


def test_the_limits_hold_the_published_architectures():
    flaubert_large = dict(n_layers=24, emb_dim=1024, n_heads=16, vocab_size=68_729, max_position_embeddings=512)
    FlaubertConfig(**flaubert_large, id2label={i: str(i) for i in range(1000)})
    FlaubertConfig(**{name: LIMITS[name] for name in ("n_layers", "emb_dim", "vocab_size")}, n_heads=16)


_SIZES_IN_PYTHON = """
from minflaubert import FlaubertConfig, FlaubertModel
config = FlaubertConfig(vocab_size=10, emb_dim=8, n_layers=1, n_heads=2)
changed = FlaubertConfig(vocab_size=10, emb_dim=8, n_layers=1, n_heads=2)
changed.n_layers = 1_000_000  # (a field set after the config was made)
for attempt in (lambda: setattr(config, "num_labels", 10**9), lambda: config.updated(num_labels=10**9),
                lambda: FlaubertConfig.from_dict({"num_labels": 10**9}), lambda: FlaubertModel(changed)):
    try:
        attempt()
    except ValueError as error:
        print(error)
"""


def test_absurd_sizes_are_refused_in_python_too():
    """Through the API as well (in a child under the memory ceiling: before, each built a billion labels or a
    million layers' names)."""
    done = subprocess.run([sys.executable, "-c", _SIZES_IN_PYTHON], capture_output=True, text=True,
                          cwd=REPO, timeout=30, preexec_fn=_cap_memory)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["num_labels must be <= 1000000 (minflaubert's limit), got 1000000000"] * 3 + [
        "n_layers must be <= 1024 (minflaubert's limit), got 1000000"]


# ---------------------------------------------------------------------------------------------- finding 9
def _safetensors_file(path, header, data: bytes):
    """A safetensors file: the header (a dict, or its raw bytes) padded to 8 bytes, then ``data``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _f32(count: int, begin: int) -> dict:
    return {"dtype": "F32", "shape": [count], "data_offsets": [begin, begin + 4 * count]}


_ENTRY = b'{"dtype": "F32", "shape": [1], "data_offsets": [%d, %d]}'
_MALFORMED = {  # id: (header, data, what our message says)
    "overlap": ({"a": _f32(2, 0), "b": _f32(2, 4)}, bytes(12), "invalid offset for tensor 'b'"),
    "hole": ({"a": _f32(1, 0), "b": _f32(1, 8)}, bytes(12), "invalid offset for tensor 'b'"),
    "offset-1": ({"a": _f32(1, 1)}, bytes(5), "invalid offset for tensor 'a'"),
    "duplicate-key": (b'{"a": %s, "a": %s}' % (_ENTRY % (0, 4), _ENTRY % (4, 8)), bytes(8), "key 'a' appears twice"),
    "trailing-bytes": ({"a": _f32(1, 0)}, bytes(4) + b"junk", "bytes after the last tensor"),
    "metadata-list": ({"__metadata__": ["pt"], "a": _f32(1, 0)}, bytes(4), "__metadata__ must map"),
    "metadata-int": ({"__metadata__": {"format": 1}, "a": _f32(1, 0)}, bytes(4), "__metadata__ must map"),
    "metadata-nested": ({"__metadata__": {"a": {"b": "c"}}, "a": _f32(1, 0)}, bytes(4), "__metadata__ must map"),
    "shape-vs-offsets": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4), "takes 8 bytes"),
    "offsets-reversed": ({"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}, bytes(4),
                         "does not fit the file"),
    "dtype": ({"a": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), "malformed header"),
    "negative-dim": ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4), "malformed header"),
    "bool-dim": ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4), "malformed header"),
    "duplicate-field": (b'{"a": {"dtype": "F32", "shape": [1], "shape": [1], "data_offsets": [0, 4]}}', bytes(4),
                        "key 'shape' appears twice"),
    "not-an-object": (b"[1]", b"", "not a JSON object"),
    "not-utf8": (b'{"\xff": 1}', b"", "is not valid JSON: not UTF-8"),
}


@pytest.mark.parametrize("header, data", [
    ({"a": _f32(2, 0), "b": _f32(1, 8)}, np.arange(3, dtype="<f4").tobytes()),
    ({"__metadata__": None, "a": _f32(1, 0)}, bytes(4)),
    ({"__metadata__": {"format": "pt"}}, b""),
    ({"z": _f32(0, 0), "a": _f32(1, 0)}, bytes(4)),  # an empty tensor shares its offset with the next one
    ({"b": _f32(1, 4), "a": _f32(1, 0)}, bytes(8)),  # the header's order is not the data's
], ids=["two-tensors", "null-metadata", "no-tensors", "empty-tensor", "header-order"])
def test_files_the_library_accepts_load_the_same(tmp_path, header, data):
    path = _safetensors_file(tmp_path / "ok.safetensors", header, data)
    with safe_open(str(path), framework="np") as theirs:
        expected = {name: theirs.get_tensor(name) for name in theirs.keys()}
    ours = read_safetensors(path)
    assert sorted(ours) == sorted(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(ours[name], array)


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_files_the_library_refuses_are_refused(tmp_path, case):
    """Overlaps, holes, a tensor at offset 1, duplicate keys, trailing junk, a list as __metadata__... loaded here
    before, each showing other tensors than every other tool would."""
    header, data, message = _MALFORMED[case]
    path = _safetensors_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(SafetensorError):
        with safe_open(str(path), framework="np") as theirs:
            [theirs.get_tensor(name) for name in theirs.keys()]
    with pytest.raises(ValueError, match=message) as caught:
        read_safetensors(path)
    assert str(caught.value).startswith(str(path))


def test_a_header_larger_than_the_library_allows_is_refused_unread(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", 100_000_008) + b"{}")
    with pytest.raises(SafetensorError, match="header too large"):
        safe_open(str(path), framework="np")
    with pytest.raises(ValueError, match="safetensors header too large"):
        read_safetensors(path)


def test_a_name_given_twice_is_refused_even_where_the_library_keeps_the_last(tmp_path):
    """Stricter than the library, which keeps the last entry: one name, two meanings."""
    header = b'{"a": %s, "b": %s, "a": %s}' % (_ENTRY % (4, 8), _ENTRY % (0, 4), _ENTRY % (4, 8))
    path = _safetensors_file(tmp_path / "twice.safetensors", header, bytes(8))
    with pytest.raises(ValueError, match="key 'a' appears twice"):
        read_safetensors(path)


# --------------------------------------------------------------------------------------------- finding 10
_DEEP = "[" * 100_000 + "]" * 100_000


def _rewrite(name: str, text: str):
    return lambda folder: (folder / name).write_text(text)


def _shard_index(weight_map):
    def make(folder):
        (folder / "model.safetensors").rename(folder / "shard.safetensors")
        (folder / "model.safetensors.index.json").write_text(weight_map)
    return make


def _tokenizer_setting(value: str):
    """Set model_max_length to ``value``, raw JSON text (json.dumps cannot write 1e400)."""
    def make(folder):
        path = folder / "tokenizer_config.json"
        text = json.dumps({**json.loads(path.read_text()), "model_max_length": "VALUE"})
        path.write_text(text.replace('"VALUE"', value))
    return make


@pytest.mark.parametrize("damage, command, fragments", [
    (_rewrite("config.json", '{"a": %s}' % _DEEP), "info", ["config.json is not valid JSON here: nested too deeply"]),
    (_rewrite("vocab.json", '{"a": %s}' % _DEEP), "fill-mask", ["vocab.json' is not valid JSON here: nested too"]),
    (_rewrite("tokenizer_config.json", '{"a": %s}' % _DEEP), "fill-mask",
     ["tokenizer_config.json' is not valid JSON here: nested too deeply"]),
    (_shard_index('{"weight_map": %s}' % _DEEP), "info", ["index.json is not valid JSON here: nested too deeply"]),
    (_shard_index('{"weight_map": {"a": 1}}'), "info",
     ["index.json is not a valid shard index: weight_map gives tensor 'a' the shard 1, not a file name"]),
    (_tokenizer_setting("1e400"), "fill-mask", ["tokenizer_config.json: model_max_length must be an integer", "inf"]),
    (_tokenizer_setting('"abc"'), "fill-mask", ["tokenizer_config.json: model_max_length must be an integer"]),
    (_tokenizer_setting("true"), "fill-mask", ["tokenizer_config.json: model_max_length must be an integer"]),
    (lambda folder: (folder / "merges.txt").open("ab").write(b"\xff\xfe x\n"), "fill-mask",
     ["merges.txt' is not valid UTF-8 (line "]),
    (_rewrite("vocab.json", '{"<s>": "zero"}'), "fill-mask", ["vocab.json' gives token '<s>' the id 'zero'"]),
    (_rewrite("config.json", '{"n_layers": 2, "n_layers": 3}'), "info", ["config.json is not valid JSON: key "
                                                                          "'n_layers' appears twice"]),
    (_rewrite("config.json", '{"n_layers": %s}' % ("9" * 5000)), "info", ["config.json is not valid JSON"]),
], ids=["config-deep", "vocab-deep", "tokenizer-config-deep", "index-deep", "index-int-shard", "max-length-1e400",
        "max-length-str", "max-length-bool", "merges-not-utf8", "vocab-id-str", "config-duplicate", "config-huge-int"])
def test_every_json_the_cli_reads_fails_in_one_line(model, damage, command, fragments):
    """RecursionError (30-40 lines), OverflowError, 'invalid literal for int()', 'unsupported operand type(s) for
    /: PosixPath and int', a decode error naming no file: before, each was a traceback or an unnamed error."""
    damage(model)
    arguments = ["--model", model, "Il leva les <special1> ."] if command == "fill-mask" else [model]
    assert_one_line_error(run(command, *arguments), command, str(model), *fragments)


@pytest.mark.parametrize("damage, fragment", [
    (lambda data: data[: len(data) // 2], "is not a valid gzip file: it is cut short"),  # EOFError before
    (lambda data: data[:2] + b"\x07" + data[3:], "is not a valid gzip file: Unknown compression method"),
    (lambda data: data[:-8] + b"\x00" * 8, "is not a valid gzip file: CRC check failed"),
], ids=["truncated", "unknown-method", "bad-crc"])
def test_a_damaged_gz_input_is_named(tmp_path, damage, fragment):
    source = tmp_path / "texts.txt.gz"
    source.write_bytes(damage(gzip.compress("Le chat dort.\n".encode() * 2000)))
    for command, output in (("embed", tmp_path / "out.npy"), ("train-bpe", tmp_path / "tokenizer")):
        extra = ["--model", LM] if command == "embed" else ["--vocab-size", "100"]
        result = run(command, source, "-o", output, "--quiet", *extra)
        assert_one_line_error(result, command, f"{source} {fragment}")

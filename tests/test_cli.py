"""The command line, run for real: ``python -m minflaubert ...`` in a subprocess, on the tiny fixtures.

The fixtures' weights are random, so the answers are checked for shape, arithmetic and spans, never for sense.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO
from minflaubert import FlaubertForQuestionAnswering
from minflaubert.apps.pipelines import pipeline
from minflaubert.checkpoints.torch_pickle import load_torch_bin
from minflaubert.checkpoints.weights import load_state_dict

COMMANDS = ["fill-mask", "embed", "classify", "ner", "qa", "download", "convert", "info", "train-bpe"]


def run(*args, stdin: str = "", env: dict | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    """``minflaubert ARGS`` in a fresh process; text in and out as UTF-8."""
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    return subprocess.run([sys.executable, "-m", "minflaubert", *map(str, args)], input=stdin, capture_output=True,
                          text=True, encoding="utf-8", env=environment, cwd=cwd, timeout=300)


def json_lines(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_error(result: subprocess.CompletedProcess, message: str, code: int = 1) -> None:
    assert result.returncode == code
    assert result.stdout == ""
    assert message in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "example:" in result.stdout and "usage: minflaubert " + command in result.stdout


def test_top_level_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0 and all(command in result.stdout for command in COMMANDS)
    assert_error(run(), "the following arguments are required: COMMAND", code=2)


def test_fill_mask_from_arguments_and_stdin():
    texts = ["Le chat dort sur le <special1>.", "Paris est la <special1> de la France."]
    lines = json_lines(run("fill-mask", *texts, "--model", FIXTURES / "tiny-lm", "--top-k", 3))
    assert len(lines) == 2 and all(len(proposals) == 3 for proposals in lines)
    expected = pipeline("fill-mask", FIXTURES / "tiny-lm")(texts, top_k=3)
    for got, want in zip(lines, expected):
        assert [p["token"] for p in got] == [p["token"] for p in want]
        assert [p["score"] for p in got] == pytest.approx([p["score"] for p in want], rel=1e-5)
    assert json_lines(run("fill-mask", "--model", FIXTURES / "tiny-lm", stdin="\n".join(texts) + "\n")) == \
        json_lines(run("fill-mask", *texts, "--model", FIXTURES / "tiny-lm"))


def test_errors_go_to_stderr_with_a_nonzero_exit(tmp_path):
    assert_error(run("fill-mask", "Pas de masque.", "--model", FIXTURES / "tiny-lm"), "no mask token")
    assert_error(run("fill-mask", "Le <special1>.", "--model", tmp_path / "nowhere"), "neither an existing folder")
    assert_error(run("fill-mask", "Le <special1>.", "--model", FIXTURES / "tiny-lm", "--top-k", 0),
                 "top_k must be a positive integer")
    assert_error(run("ner", "--model", FIXTURES / "tiny-token-classification", "--aggregation", "x"),
                 "invalid choice", code=2)


def test_a_published_model_not_downloaded_says_how_to_get_it(tmp_path):
    env = {"MINFLAUBERT_WEIGHTS": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    assert_error(run("fill-mask", "Le <special1>.", "--model", "flaubert_base_cased", env=env),
                 "minflaubert download flaubert_base_cased")
    assert_error(run("info", "flaubert_base_cased", env=env), "minflaubert download flaubert_base_cased")


def test_embed_a_file_and_stdin(tmp_path):
    texts = ["Le chat dort.", "", "Marie habite à Lyon et travaille à Genève.", "Paris"]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = run("embed", source, "-o", tmp_path / "mean.npy", "--model", FIXTURES / "tiny-model", "--batch-size", 2)
    assert json_lines(result) == [{"output": str(tmp_path / "mean.npy"), "texts": 4, "shape": [4, 32],
                                   "pooling": "mean"}]
    assert "embed" in result.stderr and "lines/s" in result.stderr  # the progress bar
    vectors = np.load(tmp_path / "mean.npy")
    expected = pipeline("feature-extraction", FIXTURES / "tiny-model")(texts, pooling="mean")
    np.testing.assert_allclose(vectors, np.stack(expected), atol=2e-5)  # one row per line, empty lines included
    piped = run("embed", "-", "-o", tmp_path / "first.npy", "--pooling", "first", "--model", FIXTURES / "tiny-model",
                stdin="\n".join(texts))
    assert json_lines(piped)[0]["shape"] == [4, 32]
    first = pipeline("feature-extraction", FIXTURES / "tiny-model")(texts, pooling="first")
    np.testing.assert_allclose(np.load(tmp_path / "first.npy"), np.stack(first), atol=2e-5)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert json_lines(run("embed", empty, "-o", tmp_path / "x.npy", "--model", FIXTURES / "tiny-model"))[0][
        "shape"] == [0, 32]  # an empty input, an empty array (as a folder output is complete and empty)


def test_classify():
    lines = json_lines(run("classify", "Quel beau film !", "Bof.", "--top-k", 0,
                           "--model", FIXTURES / "tiny-sequence-classification"))
    assert len(lines) == 2
    for labels in lines:
        assert sorted(entry["label"] for entry in labels) == ["NEUTRE", "NÉGATIF", "POSITIF"]  # read as UTF-8
        assert sum(entry["score"] for entry in labels) == pytest.approx(1.0)
    one = json_lines(run("classify", "Bof.", "--model", FIXTURES / "tiny-sequence-classification"))
    assert len(one[0]) == 1


@pytest.mark.parametrize("aggregation", ["none", "simple", "first", "max"])
def test_ner_spans_slice_the_original_text(aggregation):
    texts = ["Marie habite à Lyon et travaille à Genève.", "L’été, Jean-Pierre a visité «Montréal»…"]
    lines = json_lines(run("ner", *texts, "--aggregation", aggregation,
                           "--model", FIXTURES / "tiny-token-classification"))
    assert len(lines) == 2
    for text, entities in zip(texts, lines):
        for entity in entities:
            assert entity["word"] == text[entity["start"]:entity["end"]] != ""
            assert ("entity" if aggregation == "none" else "entity_group") in entity


@pytest.mark.parametrize("fixture", ["tiny-qa-simple", "tiny-qa"])
def test_qa_answer_is_a_span_of_the_context(tmp_path, fixture):
    context = ("Le musée du Louvre accueille des millions de visiteurs chaque année. Marie habite à Lyon et "
               "travaille à Genève. Le train pour Bordeaux part à huit heures.")
    answer = json_lines(run("qa", "--question", "Où habite Marie ?", "--context", context,
                            "--model", FIXTURES / fixture))[0]
    assert set(answer) == {"score", "start", "end", "answer"}
    assert answer["answer"] == context[answer["start"]:answer["end"]]
    (tmp_path / "context.txt").write_text(context, encoding="utf-8")
    several = json_lines(run("qa", "--question", "Où habite Marie ?", "--context-file", tmp_path / "context.txt",
                             "--top-k", 2, "--doc-stride", 4, "--model", FIXTURES / fixture))[0]
    assert isinstance(several, list)
    assert all(a["answer"] == context[a["start"]:a["end"]] for a in several)


def test_info_describes_a_checkpoint():
    info = json_lines(run("info", FIXTURES / "tiny-qa"))[0]
    assert info["architectures"] == ["FlaubertForQuestionAnswering"]
    assert info["tasks"] == ["feature-extraction", "question-answering"]
    assert info["head_weights"] == ["qa_outputs"]
    assert (info["emb_dim"], info["n_layers"], info["n_heads"], info["vocab_size"]) == (32, 2, 4, 426)
    assert info["parameters"] == FlaubertForQuestionAnswering.from_pretrained(FIXTURES / "tiny-qa").num_parameters()
    assert info["files"]["model.safetensors"] == (FIXTURES / "tiny-qa" / "model.safetensors").stat().st_size
    assert info["labels"] is None
    ner = json_lines(run("info", FIXTURES / "tiny-token-classification"))[0]
    assert ner["labels"] == {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"}
    assert ner["head_weights"] == ["classifier"]


def test_convert_a_torch_file_without_torch(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "pytorch_model.bin").write_bytes((FIXTURES / "tiny_state_dict.bin").read_bytes())
    (source / "config.json").write_text("{}", encoding="utf-8")
    result = run("convert", source, "--output", tmp_path / "converted")
    assert json_lines(result)[0]["output"] == str(tmp_path / "converted" / "model.safetensors")
    assert "writing model" in result.stderr  # the progress bar
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == ["config.json", "model.safetensors"]
    original, converted = load_torch_bin(source / "pytorch_model.bin"), load_state_dict(tmp_path / "converted")
    assert list(converted) == list(original) or sorted(converted) == sorted(original)
    for name, array in original.items():  # same names, dtypes, shapes and values (bool, float16, 0-d, empty...)
        assert converted[name].dtype == array.dtype and converted[name].shape == array.shape
        np.testing.assert_array_equal(converted[name], array)
    assert_error(run("convert", source, "--output", tmp_path / "converted"), "already exists")
    assert run("convert", source, "--output", tmp_path / "converted", "--overwrite").returncode == 0
    assert_error(run("convert", tmp_path / "converted"), "nothing to convert")


def test_convert_a_transformers_checkpoint_then_load_it(torch, transformers, tmp_path):
    from reference import build_model

    model = build_model("FlaubertWithLMHeadModel", dict(vocab_size=426, emb_dim=32, n_layers=2, n_heads=4,
                                                        max_position_embeddings=64))
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # tied weight and position_ids included
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((FIXTURES / "tiny-lm" / name).read_bytes())
    from_bin = pipeline("fill-mask", tmp_path)("Le chat <special1>.", top_k=5)
    assert run("convert", tmp_path).returncode == 0
    (tmp_path / "pytorch_model.bin").unlink()  # now only model.safetensors can be read
    assert pipeline("fill-mask", tmp_path)("Le chat <special1>.", top_k=5) == from_bin


def test_download_into_the_hub_cache_from_a_loopback_hub(tmp_path):
    import test_hub  # its FakeHub plays the hub on 127.0.0.1

    server = test_hub.FakeHub({"flaubert/flaubert_small_cased": dict(test_hub.NER_FILES)})
    server.thread.start()
    try:
        clean = {var: "" for var in ("HF_HUB_OFFLINE", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")}
        env = {**clean, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": server.endpoint}
        result = run("download", "flaubert_small_cased", env=env)
        folder = tmp_path / "hf" / "hub" / "models--flaubert--flaubert_small_cased" / "snapshots" / test_hub.COMMIT
        assert json_lines(result) == [{"name": "flaubert_small_cased", "repo_id": "flaubert/flaubert_small_cased",
                                       "folder": str(folder)}]
        assert test_hub.files_of(folder) == test_hub.NER_FILES  # the model and its tokenizer
        assert_error(run("download", "someone/model", env=env), "'someone/model' is not a local folder, and the hub")
    finally:
        server.stop()

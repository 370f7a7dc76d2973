"""The command line's sharp edges: what users pipe in and out, and what they get when a checkpoint lacks a head.

Each test here failed before: a U+2028 inside a line split it into two results; invalid UTF-8 bytes vanished;
``classify`` on a base checkpoint answered random labels with status 0; ``| head -1`` ended in an error;
``--version`` was an error.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, REPO

BASE = FIXTURES / "tiny-model"  # a FlaubertModel checkpoint: no head weights at all
LM = FIXTURES / "tiny-lm"
CLASSIFIER = FIXTURES / "tiny-sequence-classification"


def run(*args, stdin: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess:
    """``minflaubert ARGS`` in a fresh process, bytes in and out (nothing decoded on our side)."""
    arguments = [argument if isinstance(argument, bytes) else str(argument) for argument in args]
    return subprocess.run([sys.executable, "-m", "minflaubert", *arguments], input=stdin, capture_output=True,
                          env={**os.environ, **(env or {})}, cwd=REPO, timeout=300)


def test_a_line_is_cut_at_newline_only():
    lines = ["Le chat\u2028dort.", "Le chien\x85aboie\x0c.", "Fin\r"]  # U+2028, NEL, form feed; a CRLF line end
    result = run("classify", "--model", CLASSIFIER, stdin="\n".join(lines).encode("utf-8") + b"\n")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.decode("utf-8").splitlines()) == 3  # (our output has no U+2028: labels only)


def test_invalid_utf8_is_refused_naming_the_line():
    result = run("classify", "--model", CLASSIFIER, stdin=b"Bon film.\nMauvais caf\xe9.\n")
    assert result.returncode == 1 and result.stdout == b""
    assert b"line 2 is not valid UTF-8" in result.stderr and len(result.stderr.splitlines()) == 1


def test_invalid_utf8_in_an_argument_is_refused():
    result = run("classify", "--model", CLASSIFIER, b"ok", b"caf\xe9")
    assert result.returncode == 1 and b"text argument 2 is not valid UTF-8" in result.stderr


def test_output_is_utf8_whatever_the_locale():
    result = run("ner", "--model", FIXTURES / "tiny-token-classification", "--aggregation", "none",
                 "Où est l'Église ?", env={"PYTHONIOENCODING": "latin-1"})
    assert result.returncode == 0, result.stderr
    words = [entity["word"] for entity in json.loads(result.stdout.decode("utf-8"))]
    assert "ù" in words  # (these random weights label it B-LOC)


@pytest.mark.parametrize("command, extra", [("classify", []), ("ner", []), ("fill-mask", ["<special1>"]),
                                            ("qa", ["--question", "Où ?", "--context", "Ici."])])
def test_a_checkpoint_without_the_head_is_an_error_of_one_line(command, extra):
    texts = [] if command == "qa" else ["Le chat dort."]
    texts = [f"{texts[0]} {extra[0]}"] if command == "fill-mask" else texts + extra
    result = run(command, "--model", BASE, *texts)
    assert result.returncode == 1 and result.stdout == b""
    message = result.stderr.decode("utf-8")
    assert len(message.splitlines()) == 1, message
    assert "has no weights for the" in message and "head" in message and "--allow-random-head" in message
    allowed = run(command, "--model", BASE, "--allow-random-head", *texts)
    assert allowed.returncode == 0, allowed.stderr
    assert b"random weights" in allowed.stderr


def test_a_closed_pipe_stops_quietly():
    texts = [f"Texte {i} <special1>." for i in range(40)]
    # subtle: far more output (about 40 x 10 kB) than a pipe buffers (64 kB), or the command could finish first
    command = [sys.executable, "-m", "minflaubert", "fill-mask", "--model", str(LM), "--top-k", "100", *texts]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    process.stdout.readline()  # one result, then the reader goes away, as `| head -1` does
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 141
    assert stderr == b"", stderr.decode()


def test_ctrl_c_exits_130_with_one_line():
    script = ("import sys, time; from minflaubert.apps import cli; cli.run_info = lambda args: time.sleep(60); "
              "print('ready', flush=True); sys.exit(cli.main(['info', 'x']))")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=REPO)
    assert process.stdout.readline() == b"ready\n"
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert process.stderr.read() == b"minflaubert info: interrupted\n"


def test_version():
    from minflaubert import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == f"minflaubert {__version__}"


def test_quiet_silences_warnings():
    long_text = "<special1> " + "Le chat dort. " * 40  # longer than the tiny model's 64 positions: a warning
    loud = run("fill-mask", "--model", LM, long_text)
    quiet = run("fill-mask", "--model", LM, "--quiet", long_text)
    assert b"is cut to the model's 64" in loud.stderr and len(loud.stderr.splitlines()) == 1
    assert quiet.stderr == b"" and quiet.stdout == loud.stdout


def test_qa_with_an_empty_question_or_context_says_so():
    folder = FIXTURES / "tiny-qa-simple"
    empty_question = run("qa", "--model", folder, "--question", " ", "--context", "Marie habite à Lyon.")
    assert empty_question.returncode == 1 and b"the question is empty" in empty_question.stderr
    empty_context = run("qa", "--model", folder, "--question", "Où ?", "--context", "")
    assert empty_context.returncode == 1 and b"the context is empty" in empty_context.stderr


def test_a_context_file_of_invalid_utf8_is_refused_naming_it(tmp_path):
    context = tmp_path / "context.txt"
    context.write_bytes(b"Marie habite \xe0 Lyon.")
    result = run("qa", "--model", FIXTURES / "tiny-qa-simple", "--question", "Où ?", "--context-file", context)
    assert result.returncode == 1
    assert f"{context} is not valid UTF-8 (byte 14 is b'\\xe0')".encode() in result.stderr

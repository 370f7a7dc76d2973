"""The corpus job (``minflaubert embed FILES -o FOLDER``): shards, manifest, reading back, resume after real SIGKILLs,
refusals, and the same bytes from a Dask LocalCluster.

The corpus is made up here (random sentences from a small French word list: no test data needed) and the model
is the random tiny fixture, so a whole run takes a few seconds. The byte comparisons are the point: a resumed or
distributed run must write exactly the files one clean run writes.
"""
import contextlib
import dataclasses
import gzip
import hashlib
import importlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, REPO, require
from minflaubert.apps.corpus import ShardJob, embed_corpus, loaded_pipeline, model_sha256
from minflaubert.apps.lines import read_lines
from minflaubert.apps.shards import job_id, settings_sha256
from test_cli import assert_error, json_lines, run

MODEL = FIXTURES / "tiny-model"
WORDS = ("le chat dort sur la table et Marie habite à Lyon avec Jean qui travaille à Genève depuis longtemps ; "
         "« Où est l’été ? » demanda-t-elle, 1869").split()
# 30 shards of 100 lines, batches of 2: about 4 s of work, long enough to be killed at chosen instants
KILL_ARGS = ["--model", MODEL, "--shard-lines", 100, "--batch-size", 2, "--quiet"]


def make_corpus(path: Path, lines: int, seed: int = 0) -> list[str]:
    """Random sentences of 0 to 60 words, one per line (empty lines included: they have vectors too)."""
    chooser = random.Random(seed)
    texts = [" ".join(chooser.choice(WORDS) for _ in range(chooser.randint(0, 60))) for _ in range(lines)]
    path.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    return texts


def folder_bytes(folder: Path) -> dict[str, str]:
    """{file name: sha256} of every file in an output folder, hidden ones included."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "_manifest.json").read_text(encoding="utf-8"))


def shards_in(folder: Path) -> int:
    return len(list(folder.glob("part-*.parquet")))


@pytest.fixture(scope="session")
def extra():
    """pyarrow, dask.distributed and threadpoolctl: the optional extra ``corpus`` (CI installs it)."""
    for name in ("pyarrow", "distributed", "threadpoolctl"):
        try:
            importlib.import_module(name)
        except ImportError:
            require(False, f"{name} is not installed (pip install -e '.[corpus]')")


@pytest.fixture(scope="session")
def kill_corpus(tmp_path_factory, extra):
    """A 3,000-line corpus and its clean, uninterrupted output: the bytes every other run must reproduce."""
    folder = tmp_path_factory.mktemp("kill")
    make_corpus(folder / "corpus.txt", 3000)
    clean = folder / "clean"
    json_lines(run("embed", folder / "corpus.txt", "-o", clean, *KILL_ARGS))
    return folder / "corpus.txt", folder_bytes(clean)


# ------------------------------------------------------------------------------------------------ reading the input
def test_lines_end_at_newline_only(tmp_path):
    source = tmp_path / "texts.txt"
    source.write_bytes("a\r\nb\u2028c\x0cd\n\ne\u0085f".encode())  # Windows end, U+2028, form feed, NEL, no last \n
    expected = ["a", "b\u2028c\x0cd", "", "e\u0085f"]
    assert list(read_lines(str(source))) == expected
    with gzip.open(tmp_path / "texts.txt.gz", "wb") as f:
        f.write(source.read_bytes())
    assert list(read_lines(str(tmp_path / "texts.txt.gz"))) == expected
    source.write_bytes(b"one\ntwo\n")
    assert list(read_lines(str(source))) == ["one", "two"]  # no empty line after the final newline


def test_invalid_utf8_is_an_error_naming_the_line(tmp_path):
    source = tmp_path / "texts.txt"
    source.write_bytes("juste\nd\xe9j\xe0 vu\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"texts.txt: line 2 is not valid UTF-8 \(byte 2 of the line is b'\\xe9'\)"):
        list(read_lines(str(source)))


def test_without_the_extra_the_command_says_what_to_install(tmp_path):
    make_corpus(tmp_path / "corpus.txt", 3)
    blocked = ("import sys; sys.modules['pyarrow'] = None; from minflaubert.apps.cli import main; "
               f"sys.exit(main(['embed', {str(tmp_path / 'corpus.txt')!r}, '-o', {str(tmp_path / 'out')!r}, "
               f"'--model', {str(MODEL)!r}]))")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert_error(result, 'needs pyarrow, which is not installed: pip install "minflaubert[corpus]"')
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ shards and manifest
def test_shards_manifest_and_reading_back(tmp_path, extra):
    import pyarrow as pa
    import pyarrow.dataset as ds

    import minflaubert
    from minflaubert.apps.pipelines import pipeline

    texts = make_corpus(tmp_path / "corpus.txt", 230)
    out = tmp_path / "vectors"
    summary = json_lines(run("embed", tmp_path / "corpus.txt", "-o", out, "--model", MODEL, "--shard-lines", 50,
                             "--keep-text", "--batch-size", 4))
    assert summary == [{"output": str(out), "lines": 230, "shards": 5, "dim": 32, "pooling": "mean",
                        "resumed_shards": 0}]
    assert sorted(path.name for path in out.iterdir()) == \
        ["_manifest.json", *(f"part-{i:05d}.parquet" for i in range(5))]
    recorded = manifest(out)
    assert recorded["status"] == "complete" and recorded["lines"] == 230 and recorded["dim"] == 32
    assert recorded["shards"][-1] == {"file": "part-00004.parquet", "first_line": 200, "lines": 30}
    source = tmp_path / "corpus.txt"
    assert recorded["inputs"] == [{"path": str(source), "bytes": source.stat().st_size, "first_line": 0,
                                   "sha256": hashlib.sha256(source.read_bytes()).hexdigest(), "lines": 230}]
    assert {"model_sha256", "pooling", "normalize", "max_length", "batch_size", "shard_lines", "inputs_sha256",
            "minflaubert", "pyarrow"} <= set(recorded["settings"])

    vectors = minflaubert.read_embeddings(out)
    assert vectors.shape == (230, 32) and vectors.dtype == np.float32
    expected = np.stack(pipeline("feature-extraction", MODEL)(texts, pooling="mean"))
    np.testing.assert_allclose(vectors, expected, atol=2e-5)  # row i is line i
    lines, firsts = zip(*minflaubert.iter_embeddings(out))
    assert [len(part) for part in lines] == [50, 50, 50, 50, 30] and lines[1][0] == 50
    np.testing.assert_array_equal(np.concatenate(firsts), vectors)
    on_disk = minflaubert.read_embeddings(out, memmap=tmp_path / "vectors.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "vectors.npy", mmap_mode="r"), vectors)
    assert isinstance(on_disk, np.memmap)

    table = ds.dataset(out, format="parquet").to_table().sort_by("line")  # the folder as it is: one dataset
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert table.column("line").to_pylist() == list(range(230)) and table.column("text").to_pylist() == texts


def test_max_pooling_normalized_and_several_inputs(tmp_path, extra):
    import minflaubert
    from minflaubert.apps.pipelines import pipeline

    first, second = make_corpus(tmp_path / "a.txt", 7, seed=1), make_corpus(tmp_path / "b.txt", 5, seed=2)
    with gzip.open(tmp_path / "b.txt.gz", "wb") as f:
        f.write((tmp_path / "b.txt").read_bytes())
    out = tmp_path / "vectors"
    json_lines(run("embed", tmp_path / "a.txt", "-", tmp_path / "b.txt.gz", "-o", out, "--model", MODEL,
                   "--pooling", "max", "--normalize", stdin="de l’entrée standard\n"))
    expected = pipeline("feature-extraction", MODEL)([*first, "de l’entrée standard", *second], pooling="max",
                                                     normalize=True)
    np.testing.assert_allclose(minflaubert.read_embeddings(out), np.stack(expected), atol=2e-5)
    assert [(Path(entry["path"]).name, entry["first_line"], entry["lines"]) for entry in manifest(out)["inputs"]] \
        == [("a.txt", 0, 7), ("-", 7, 1), ("b.txt.gz", 8, 5)]


def test_other_settings_are_refused_and_overwrite_starts_over(tmp_path, extra):
    make_corpus(tmp_path / "corpus.txt", 40)
    out = tmp_path / "vectors"
    common = [tmp_path / "corpus.txt", "-o", out, "--shard-lines", 10, "--quiet"]
    json_lines(run("embed", *common, "--model", MODEL))
    assert_error(run("embed", *common, "--model", MODEL, "--pooling", "max"), "pooling: 'mean' then, 'max' now")

    def embed(**changes):  # the same job in this process (faster), with some settings changed
        return embed_corpus([tmp_path / "corpus.txt"], out, **{"model": MODEL, "shard_lines": 10, "progress": False,
                                                                **changes})

    assert embed()["resumed_shards"] == 4  # the same job again: nothing to do
    with pytest.raises(ValueError, match=r"model \(sha256 of its files\): \w{12}… then, \w{12}… now"):
        embed(model=FIXTURES / "tiny-model-prenorm")
    with pytest.raises(ValueError, match="batch_size: 8 then, 3 now"):
        embed(batch_size=3)
    with open(tmp_path / "corpus.txt", "a", encoding="utf-8") as f:
        f.write("une ligne de plus\n")
    with pytest.raises(ValueError, match=r"input \(sha256 of each file\): \[\w{12}…\] then, \[\w{12}…\] now.*"
                                         r"pass --overwrite to start over"):
        embed()
    embed(pooling="max", overwrite=True)
    embed_corpus([tmp_path / "corpus.txt"], tmp_path / "clean", model=MODEL, shard_lines=10, pooling="max",
                 progress=False)
    assert folder_bytes(out) == folder_bytes(tmp_path / "clean")  # started over: as if the first job never was
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("à garder")
    with pytest.raises(FileExistsError, match="is not empty and holds no _manifest.json"):
        embed_corpus([tmp_path / "corpus.txt"], tmp_path / "mine", model=MODEL, progress=False)


def test_a_changed_stdin_is_caught_on_resume(tmp_path, extra):
    texts = make_corpus(tmp_path / "corpus.txt", 30)
    out = tmp_path / "vectors"
    command = ["embed", "-", "-o", out, "--model", MODEL, "--shard-lines", 10]
    json_lines(run(*command, stdin="\n".join(texts)))
    changed = [*texts[:15], "une autre ligne", *texts[16:]]
    assert_error(run(*command, stdin="\n".join(changed)), "part-00001.parquet was made from other lines")
    assert_error(run(*command, stdin="\n".join(texts[:20])), "holds shards beyond the input's 20 lines")


def test_unfinished_output_cannot_be_read(tmp_path, extra):
    import minflaubert

    make_corpus(tmp_path / "corpus.txt", 20)
    out = tmp_path / "vectors"
    json_lines(run("embed", tmp_path / "corpus.txt", "-o", out, "--model", MODEL, "--shard-lines", 10))
    recorded = manifest(out)
    (out / "_manifest.json").write_text(json.dumps({**recorded, "status": "running"}), encoding="utf-8")
    with pytest.raises(ValueError, match="unfinished"):
        minflaubert.read_embeddings(out)
    with pytest.raises(FileNotFoundError, match="holds no _manifest.json"):
        minflaubert.read_embeddings(tmp_path)


# ------------------------------------------------------------------------------------------------ resume after kills
def start(*args) -> subprocess.Popen:
    """``minflaubert ARGS`` in a new process group, to be killed like a crash would."""
    return subprocess.Popen([sys.executable, "-m", "minflaubert", *map(str, args)], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until(process: subprocess.Popen, ready) -> None:
    """Return as soon as ``ready()`` holds; the job must still be running then."""
    while not ready():
        assert process.poll() is None, f"the job ended before the chosen instant: {process.stderr.read()}"
        time.sleep(0.005)


def kill_when(process: subprocess.Popen, ready) -> None:
    """SIGKILL the job and everything it started, as soon as ``ready()`` holds."""
    wait_until(process, ready)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def kill_group(process: subprocess.Popen) -> bool:
    """SIGKILL what is left of the job's process group; -> whether anything was left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def dask_workers(process: subprocess.Popen) -> list:
    """The worker processes of the job's LocalCluster (its children started by multiprocessing's spawn)."""
    import psutil

    workers = []
    for child in psutil.Process(process.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):  # a child may end between the listing and the look
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
    return workers


def test_three_sigkills_then_resume_give_the_bytes_of_one_clean_run(tmp_path, kill_corpus):
    corpus, clean = kill_corpus
    out = tmp_path / "vectors"
    command = ["embed", corpus, "-o", out, *KILL_ARGS]
    instants = [lambda: (out / "_manifest.json").exists(),  # before the first shard
                lambda: shards_in(out) >= 6,  # in the middle of the 7th shard, more or less
                lambda: shards_in(out) >= 18]
    for ready in instants:
        kill_when(start(*command), ready)
        assert manifest(out)["status"] == "running" and shards_in(out) < 30
    job = job_id(settings_sha256(manifest(out)["settings"]))
    (out / f".part-00029.parquet.tmp-{job}-host-1-2").write_bytes(b"half a shard")  # as a kill during a write leaves
    summary = json_lines(run(*command))[0]
    assert summary["lines"] == 3000 and summary["resumed_shards"] >= 18
    assert folder_bytes(out) == clean


# ------------------------------------------------------------------------------------------------ Dask
def test_a_worker_loads_the_model_once_and_checks_it(tmp_path, extra):
    job = ShardJob(folder=str(tmp_path), model=str(MODEL), model_sha256=model_sha256(MODEL), pooling="mean",
                   normalize=False, batch_size=8, keep_text=False)
    assert loaded_pipeline(job) is loaded_pipeline(job)  # every shard of this worker thread reuses it
    elsewhere = dataclasses.replace(job, model_sha256="0" * 64)  # as if this machine had other files at that path
    with pytest.raises(ValueError, match="tiny-model on .* is not the checkpoint the job started with"):
        loaded_pipeline(elsewhere)


def test_dask_local_cluster_gives_the_same_bytes(tmp_path, kill_corpus):
    corpus, clean = kill_corpus
    out = tmp_path / "vectors"
    json_lines(run("embed", corpus, "-o", out, *KILL_ARGS, "--dask", "local:2"))
    assert folder_bytes(out) == clean


def test_dask_resumes_after_the_client_or_a_worker_is_killed(tmp_path, kill_corpus):
    import psutil

    corpus, clean = kill_corpus
    out = tmp_path / "vectors"
    command = ["embed", corpus, "-o", out, *KILL_ARGS, "--dask", "local:2"]
    job = start(*command)
    try:
        wait_until(job, lambda: len(dask_workers(job)) == 2 and shards_in(out) >= 3)
        workers = dask_workers(job)
        os.kill(job.pid, signal.SIGKILL)  # the client only: its workers must stop by themselves
        job.wait(timeout=60)
        assert not psutil.wait_procs(workers, timeout=60)[1], "workers outlived their killed client"
    finally:
        kill_group(job)
    assert manifest(out)["status"] == "running"

    job = start(*command)  # resume, and kill a worker on the way: Dask reruns its shard on a new one
    try:
        wait_until(job, lambda: len(dask_workers(job)) == 2 and shards_in(out) >= 12)
        dask_workers(job)[0].kill()
        assert job.wait(timeout=300) == 0, job.stderr.read()
    finally:
        kill_group(job)
    assert folder_bytes(out) == clean


def test_lines_cut_to_the_model_length_are_reported_once(tmp_path, extra, recwarn):
    long_lines = [" ".join(["le chat dort"] * 30)] * 40 + ["court"]
    (tmp_path / "long.txt").write_text("".join(line + "\n" for line in long_lines), encoding="utf-8")
    embed_corpus([tmp_path / "long.txt"], tmp_path / "vectors", model=MODEL, shard_lines=10, progress=False)
    messages = [str(w.message) for w in recwarn if w.category is not ResourceWarning]  # (earlier tests' pipes)
    assert messages == ["40 of 41 lines were longer than the model's 64 tokens and were cut there: the rest of them "
                        "is not in their vectors"], messages


def test_dask_workers_never_block_on_an_unread_stderr(tmp_path, extra):
    """Workers write to the client's stderr; one warning per cut line used to fill that pipe and hang the job."""
    long_lines = "".join(f"{i} " + " ".join(["le chat dort"] * 30) + "\n" for i in range(3000))  # all different
    (tmp_path / "long.txt").write_text(long_lines, encoding="utf-8")
    job = start("embed", tmp_path / "long.txt", "-o", tmp_path / "vectors", *KILL_ARGS, "--dask", "local:2")
    try:
        assert job.wait(timeout=300) == 0
    finally:
        kill_group(job)
    assert job.stderr.read().decode().count("warning") == 0  # --quiet


# ------------------------------------------------------------------------------------------------ .npy and real text
def test_npy_output_is_replaced_only_when_asked_and_complete(tmp_path):
    make_corpus(tmp_path / "corpus.txt", 5)
    target = tmp_path / "vectors.npy"
    np.save(target, np.zeros(3))
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    assert_error(run("embed", tmp_path / "corpus.txt", "-o", target, "--model", MODEL),
                 "vectors.npy already exists: pass --overwrite")  # (before: replaced without a word)
    assert_error(run("embed", tmp_path / "bad.txt", "-o", target, "--model", MODEL, "--overwrite"),
                 "line 2 is not valid UTF-8")
    np.testing.assert_array_equal(np.load(target), np.zeros(3))
    assert json_lines(run("embed", tmp_path / "corpus.txt", "-o", target, "--model", MODEL, "--overwrite"))[0][
        "shape"] == [5, 32]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.txt", "corpus.txt", "vectors.npy"]
    assert_error(run("embed", tmp_path / "corpus.txt", "-o", target, "--model", MODEL, "--dask", "local:2"),
                 "--dask: only for Parquet shards")


# ------------------------------------------------------------------------------------------------ one writer, our files
def test_a_second_writer_is_refused_naming_the_holder(tmp_path, kill_corpus):
    corpus, clean = kill_corpus
    out = tmp_path / "vectors"
    first = start("embed", corpus, "-o", out, *KILL_ARGS)
    try:
        wait_until(first, lambda: shards_in(out) >= 1)
        os.killpg(first.pid, signal.SIGSTOP)  # paused mid-job, lock held: the others surely come while it runs
        for other in ([], ["--pooling", "max", "--overwrite"]):  # the same job again, and one told to start over
            assert_error(run("embed", corpus, "-o", out, *KILL_ARGS, *other),
                         f"{out} is being written by another embed job (pid {first.pid} on {socket.gethostname()}, "
                         f"started 20")
        os.killpg(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        kill_group(first)
    assert folder_bytes(out) == clean  # the first job's bytes, untouched by the refused ones


def test_resume_and_overwrite_delete_only_the_jobs_own_files(tmp_path, extra):
    import minflaubert

    make_corpus(tmp_path / "corpus.txt", 40)
    out = tmp_path / "vectors"
    command = ["embed", tmp_path / "corpus.txt", "-o", out, "--model", MODEL, "--shard-lines", 10, "--quiet"]
    json_lines(run(*command))
    mine = {".thesis.tmp-final.docx": b"ma th\xc3\xa8se", f".part-00001.parquet.tmp-job{'f' * 16}-host-1-2": b"not ours"}
    for name, content in mine.items():
        (out / name).write_bytes(content)
    job = job_id(settings_sha256(manifest(out)["settings"]))
    (out / f".part-00002.parquet.tmp-{job}-host-1-2").write_bytes(b"half a shard of this job, killed")
    assert json_lines(run(*command))[0]["resumed_shards"] == 4  # a resume deletes that half shard, and only it
    assert all((out / name).read_bytes() == content for name, content in mine.items())
    mine["part-mine.parquet"] = b"not a shard of the job"
    (out / "part-mine.parquet").write_bytes(mine["part-mine.parquet"])
    json_lines(run(*command, "--pooling", "max", "--overwrite"))
    assert manifest(out)["settings"]["pooling"] == "max" and minflaubert.read_embeddings(out).shape == (40, 32)
    assert sorted(path.name for path in out.iterdir()) == \
        sorted(["_manifest.json", *mine, *(f"part-{i:05d}.parquet" for i in range(4))])
    assert all((out / name).read_bytes() == content for name, content in mine.items())


def test_a_finished_shard_of_other_settings_is_not_reused(tmp_path, extra):
    make_corpus(tmp_path / "corpus.txt", 30)

    def embed(out, **options):
        return embed_corpus([tmp_path / "corpus.txt"], tmp_path / out, model=MODEL, shard_lines=10, progress=False,
                            **options)
    embed("mean")
    embed("max", pooling="max")
    # as two jobs writing at once left it: a max-pooled shard among mean ones, under a mean job's manifest
    (tmp_path / "max" / "part-00001.parquet").replace(tmp_path / "mean" / "part-00001.parquet")
    with pytest.raises(ValueError, match="part-00001.parquet was made with other settings than this job's"):
        embed("mean")


def test_an_empty_input_gives_a_complete_empty_output(tmp_path, extra):
    import minflaubert

    (tmp_path / "empty.txt").write_text("")
    out = tmp_path / "vectors"
    assert json_lines(run("embed", tmp_path / "empty.txt", "-o", out, "--model", MODEL))[0] == \
        {"output": str(out), "lines": 0, "shards": 0, "dim": 32, "pooling": "mean", "resumed_shards": 0}
    assert manifest(out)["status"] == "complete" and minflaubert.read_embeddings(out).shape == (0, 32)
    make_corpus(tmp_path / "corpus.txt", 12)  # the next job, a real one, runs there (nothing was there to lose)
    assert json_lines(run("embed", tmp_path / "corpus.txt", "-o", out, "--model", MODEL))[0]["lines"] == 12
    assert json_lines(run("embed", tmp_path / "empty.txt", "-o", tmp_path / "empty.npy", "--model", MODEL))[0][
        "shape"] == [0, 32]


def test_read_embeddings_refuses_a_hostile_manifest(tmp_path, extra):
    import minflaubert

    make_corpus(tmp_path / "corpus.txt", 20)
    out = tmp_path / "vectors"
    embed_corpus([tmp_path / "corpus.txt"], out, model=MODEL, shard_lines=10, progress=False)
    good = manifest(out)
    (tmp_path / "outside.parquet").write_bytes((out / "part-00000.parquet").read_bytes())
    os.symlink("../outside.parquet", out / "link.parquet")

    def with_shard(**changes):
        return {**good, "shards": [{**good["shards"][0], **changes}, good["shards"][1]]}
    cases = [
        ([good], r"_manifest.json must hold a JSON object \(a corpus job.s manifest\), not a list"),
        ({key: value for key, value in good.items() if key != "shards"}, r"field 'shards' must be a list, got None"),
        ({**good, "lines": "20"}, r"field 'lines' must be a whole number >= 0, got '20'"),
        ({**good, "dim": True}, r"field 'dim' must be a whole number >= 1, got True"),
        ({**good, "settings": []}, r"field 'settings' must be a JSON object"),
        ({**good, "shards": ["part-00000.parquet"]}, r"field 'shards\[0\]' must be a JSON object"),
        (with_shard(file="../outside.parquet"), r"field 'shards\[0\].file' must be a file name in the folder"),
        (with_shard(file=str(tmp_path / "outside.parquet")), r"field 'shards\[0\].file' must be a file name"),
        (with_shard(file="link.parquet"), r"field 'shards\[0\].file' \(link.parquet\) leads out of the folder"),
        (with_shard(file=None), r"field 'shards\[0\].file' must be a file name in the folder, got None"),
        (with_shard(first_line=5), r"field 'shards\[0\].first_line' must be 0"),
        ({**good, "lines": 25}, r"field 'lines' says 25, but the shards hold 20 lines"),
        ({**with_shard(lines=10**12), "lines": 10**12 + 10}, r"'shards\[0\].lines' says 1000000000000, but "
                                                              r"part-00000.parquet holds 10 rows"),
    ]
    for bad, message in cases:
        (out / "_manifest.json").write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            minflaubert.read_embeddings(out)
    (out / "_manifest.json").write_text(json.dumps(good), encoding="utf-8")
    assert minflaubert.read_embeddings(out).shape == (20, 32)


def test_a_novel_round_trips_with_its_text(tmp_path, shared_data, extra):
    import pyarrow.dataset as ds

    novel = shared_data / "corpus" / "train" / "maupassant-boule-de-suif.txt"
    summary = embed_corpus([novel], tmp_path / "vectors", model=MODEL, shard_lines=200, keep_text=True,
                           progress=False)
    table = ds.dataset(tmp_path / "vectors").to_table(columns=["line", "text"]).sort_by("line")
    assert table.column("text").to_pylist() == novel.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    assert summary["lines"] == table.num_rows


def test_the_throughput_benchmark_runs(shared_data, extra, transformers):
    """benchmarks/embed_corpus.py at a tiny size, so that it cannot rot: it prints its table (no timing asserted)."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "embed_corpus.py"), "--lines", "40",
                           "--corpus", str(shared_data / "corpus" / "train"), "--model", str(MODEL),
                           "--engines", "minflaubert,dask,transformers"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| minflaubert") or
            line.startswith("| transformers")]
    assert len(rows) == 3, done.stdout

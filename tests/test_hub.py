"""Loading by hub repository id, tested for real: an HTTP server on 127.0.0.1 plays the model hub.

Nothing is mocked in huggingface_hub: it talks HTTP to ``FakeHub``, which serves repositories from memory the way
the hub does (HEAD metadata headers, ETags that are content hashes, Range requests, the hub's error codes) and can
misbehave on request (cut a transfer after N bytes). Its cache is a temporary folder. Only two module constants of
huggingface_hub are pointed at them (``hub_env``), as the environment variables would be in a fresh process: it reads
HF_ENDPOINT and HF_HOME once, when imported. One test runs a fresh process with the variables themselves.
"""
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from conftest import FIXTURES, REPO, assert_close
from minflaubert import FlaubertForTokenClassification, FlaubertModel, FlaubertTokenizer
from minflaubert.checkpoints import hub
from minflaubert.checkpoints.weights import TORCH_BIN_NAME, load_state_dict, save_state_dict

REPO_ID = "someone/flaubert-ner"
COMMIT = "0123456789abcdef" * 2 + "01234567"
LFS = (".safetensors", ".bin")  # the hub keeps these in git-lfs: their ETag is a sha256, the others' a git sha1
INPUT_IDS = np.array([[0, 12, 40, 7, 1, 2], [0, 9, 1, 2, 2, 2]])


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()
            and path.name != "reference.npz"}


NER_FILES = files_of(FIXTURES / "tiny-token-classification")


def etag(name: str, data: bytes) -> str:
    """What the hub sends as a file's ETag: sha256 for an LFS file, the git blob sha1 for the others."""
    if name.endswith(LFS):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# The fake hub
# ----------------------------------------------------------------------------------------------------------------


class FakeHub:
    """``{endpoint}/{repo}/resolve/{revision}/{file}``, served from memory on a random loopback port.

    ``repos[repo_id] = {file: bytes}``; every repository has one commit, ``COMMIT``, reachable as ``main`` too.
    ``cuts[file] = [n1, n2, ...]``: the next GETs of ``file`` send only n1, n2... bytes of their body, then hang up
    (with a TCP reset when ``hard_cuts``). ``wrong_etag``: files announced with an ETag their bytes do not hash to.
    """

    MAX_REQUESTS = 300  # a client stuck in a loop gets errors, never an endless conversation
    ROUTE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
    TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/")  # a folder listing: transformers looks for chat templates

    def __init__(self, repos: dict):
        self.repos = repos
        self.cuts: dict[str, list[int]] = {}
        self.hard_cuts = False
        self.wrong_etag: set[str] = set()
        self.requests: list[tuple[str, str, str, str | None]] = []  # (method, repo, file, Range header)
        self.bytes_sent = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def files_asked(self, method="GET") -> list[str]:
        """The files of repositories asked for (huggingface_hub may also fetch a registry of its own under /api)."""
        return [file for m, repo, file, _ in self.requests if m == method and repo is not None]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # seconds: a silent client cannot hold a server thread

            def do_HEAD(self):
                fake.respond(self, send_body=False)

            def do_GET(self):
                fake.respond(self, send_body=True)

            def log_message(self, *args):
                pass

        return Handler

    def respond(self, handler, send_body: bool) -> None:
        match = self.ROUTE.match(unquote(handler.path))
        repo, revision, file = match.groups() if match else (None, None, handler.path)
        self.requests.append((handler.command, repo, file, handler.headers.get("Range")))
        if len(self.requests) > self.MAX_REQUESTS:
            return self.status_only(handler, 503)
        tree = self.TREE.match(handler.path)
        if tree and tree.group(1) in self.repos:  # only files here, no folders
            return self.status_only(handler, 404, {"X-Error-Code": "EntryNotFound"})
        if repo not in self.repos:  # the hub answers 401 for a missing repository, as for a private one
            return self.status_only(handler, 401, {"X-Error-Code": "RepoNotFound"})
        if revision not in ("main", COMMIT):
            return self.status_only(handler, 404, {"X-Error-Code": "RevisionNotFound"})
        data = self.repos[repo].get(file)
        if data is None:
            return self.status_only(handler, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        start = self.range_start(handler.headers.get("Range"))
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        # The metadata huggingface_hub reads from a HEAD answer (and refuses to go on without).
        handler.send_header("X-Repo-Commit", COMMIT)
        tag = etag(file, data if file not in self.wrong_etag else b"other bytes")
        handler.send_header("ETag", f'"{tag}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if send_body:
            self.send_body(handler, file, data, start)

    def send_body(self, handler, file: str, data: bytes, start: int) -> None:
        """Write the body from ``start``, honouring a planned cut."""
        end = len(data)
        cut = bool(self.cuts.get(file))
        if cut:
            end = min(end, start + self.cuts[file].pop(0))
        for lo in range(start, end, 4096):
            handler.wfile.write(data[lo:min(lo + 4096, end)])
            self.bytes_sent[file] += min(lo + 4096, end) - lo
        handler.wfile.flush()
        handler.close_connection = True
        if cut and self.hard_cuts:  # linger 0: closing sends RST, the client's next read fails
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()

    @staticmethod
    def range_start(header: str | None) -> int:
        return int(header.removeprefix("bytes=").split("-")[0]) if header else 0

    @staticmethod
    def status_only(handler, code: int, headers: dict | None = None) -> None:
        handler.send_response(code)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def point_huggingface_hub_at(monkeypatch, endpoint: str, cache: Path) -> None:
    """What HF_ENDPOINT and HF_HOME do in a fresh process, for the huggingface_hub already imported here."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache.parent / "token"))  # no stored token is ever sent
    for var in ("HF_TOKEN", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    server = FakeHub({REPO_ID: dict(NER_FILES)})
    server.thread.start()
    server.cache = tmp_path / "hf" / "hub"
    point_huggingface_hub_at(monkeypatch, server.endpoint, server.cache)
    yield server
    server.stop()


def go_offline(monkeypatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1, once imported


def ner_logits(model) -> np.ndarray:
    return model(INPUT_IDS, attention_mask=INPUT_IDS != 2).logits


REFERENCE = ner_logits(FlaubertForTokenClassification.from_pretrained(FIXTURES / "tiny-token-classification"))


# ----------------------------------------------------------------------------------------------------------------
# Download, cache, offline
# ----------------------------------------------------------------------------------------------------------------


def test_first_load_downloads_then_offline_loads_from_the_cache(fake_hub, monkeypatch):
    model = FlaubertForTokenClassification.from_pretrained(REPO_ID)
    np.testing.assert_array_equal(ner_logits(model), REFERENCE)
    assert sorted(fake_hub.files_asked()) == ["config.json", "model.safetensors"]  # nothing else downloaded

    # The layout transformers reads: blobs named by ETag, refs/main -> the commit, snapshots/COMMIT/file -> blob.
    repo = fake_hub.cache / "models--someone--flaubert-ner"
    assert (repo / "refs" / "main").read_text() == COMMIT
    for name in ("config.json", "model.safetensors"):
        link = repo / "snapshots" / COMMIT / name
        assert link.is_symlink() and link.resolve() == repo / "blobs" / etag(name, NER_FILES[name])
    assert model.name_or_path == REPO_ID

    fake_hub.stop()
    go_offline(monkeypatch)
    again = FlaubertForTokenClassification.from_pretrained(REPO_ID)
    np.testing.assert_array_equal(ner_logits(again), REFERENCE)


def test_local_files_only_makes_no_request(fake_hub):
    FlaubertForTokenClassification.from_pretrained(REPO_ID)
    before = len(fake_hub.requests)
    model = FlaubertForTokenClassification.from_pretrained(REPO_ID, local_files_only=True)
    assert len(fake_hub.requests) == before
    np.testing.assert_array_equal(ner_logits(model), REFERENCE)


def test_offline_without_the_repository_says_how_to_get_it(fake_hub, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(OSError, match=rf"{REPO_ID} \(revision main\) is not in the huggingface_hub cache "
                                      rf".*minflaubert download {REPO_ID}"):
        FlaubertModel.from_pretrained(REPO_ID)
    with pytest.raises(OSError, match="minflaubert download flaubert_base_cased"):  # the name as written
        FlaubertModel.from_pretrained("flaubert_base_cased", local_files_only=True)
    assert fake_hub.requests == []


def test_tokenizer_and_pipeline_take_repository_ids(fake_hub):
    from minflaubert.apps.pipelines import pipeline

    tokenizer = FlaubertTokenizer.from_pretrained(REPO_ID)
    expected = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-token-classification")
    assert tokenizer("Marie habite à Lyon.") == expected("Marie habite à Lyon.")
    assert tokenizer.model_max_length == 64  # tokenizer_config.json was fetched too
    ner = pipeline("token-classification", REPO_ID, revision=COMMIT)
    assert ner("Marie habite à Lyon.") == pipeline("token-classification",
                                                   FIXTURES / "tiny-token-classification")("Marie habite à Lyon.")


def test_published_short_names_are_aliases(fake_hub):
    fake_hub.repos["flaubert/flaubert_small_cased"] = dict(NER_FILES)
    model = FlaubertForTokenClassification.from_pretrained("flaubert_small_cased")
    np.testing.assert_array_equal(ner_logits(model), REFERENCE)
    assert {repo for _, repo, _, _ in fake_hub.requests} - {None} == {"flaubert/flaubert_small_cased"}


def test_weights_prefer_safetensors_then_fall_back_to_pytorch_bin(fake_hub):
    fake_hub.repos[REPO_ID][TORCH_BIN_NAME] = b"never read"
    FlaubertForTokenClassification.from_pretrained(REPO_ID)
    assert TORCH_BIN_NAME not in fake_hub.files_asked("HEAD")

    torch_only = {**NER_FILES, TORCH_BIN_NAME: (FIXTURES / "tiny_state_dict.bin").read_bytes()}
    del torch_only["model.safetensors"]
    fake_hub.repos["someone/torch-only"] = torch_only
    folder = hub.resolve_name("someone/torch-only")
    assert (folder / TORCH_BIN_NAME).is_file() and not (folder / "model.safetensors").exists()


def test_sharded_checkpoint(fake_hub, tmp_path):
    state = load_state_dict(FIXTURES / "tiny-token-classification")
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    files = {name: data for name, data in NER_FILES.items() if name != "model.safetensors"}
    for shard, keys in shards.items():
        save_state_dict({key: np.array(state[key]) for key in keys}, tmp_path / shard)
        files[shard] = (tmp_path / shard / "model.safetensors").read_bytes()
    index = {"metadata": {}, "weight_map": {key: shard for shard, keys in shards.items() for key in keys}}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    fake_hub.repos["someone/sharded"] = files
    model = FlaubertForTokenClassification.from_pretrained("someone/sharded")
    np.testing.assert_array_equal(ner_logits(model), REFERENCE)


def test_pinned_revision_and_unknown_revision(fake_hub):
    FlaubertForTokenClassification.from_pretrained(REPO_ID, revision=COMMIT)
    with pytest.raises(OSError, match=f"{REPO_ID} has no revision 'v9'"):
        FlaubertForTokenClassification.from_pretrained(REPO_ID, revision="v9")


# ----------------------------------------------------------------------------------------------------------------
# Errors and damaged transfers
# ----------------------------------------------------------------------------------------------------------------


def test_unknown_repository_401_is_a_clear_error(fake_hub):
    with pytest.raises(OSError, match=r"'someone/nothing' is not a local folder, and the hub .* has no such "
                                      r"repository or refuses access \(HTTP 401\).*token="):
        FlaubertModel.from_pretrained("someone/nothing")


def test_missing_file_404_names_it(fake_hub):
    fake_hub.repos["someone/no-tokenizer"] = {"config.json": NER_FILES["config.json"]}
    with pytest.raises(OSError, match="someone/no-tokenizer \\(revision main\\) has no vocab.json"):
        FlaubertTokenizer.from_pretrained("someone/no-tokenizer")
    with pytest.raises(OSError, match="has no weights in the repository: looked for model.safetensors, "):
        FlaubertModel.from_pretrained("someone/no-tokenizer")


def test_not_a_folder_nor_a_repository_id(tmp_path, monkeypatch):
    for name in (tmp_path / "nowhere", str(tmp_path / "nowhere"), "a/b/c", "../x"):
        with pytest.raises(FileNotFoundError, match="neither an existing folder nor a repository id"):
            hub.resolve_name(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    with pytest.raises(FileNotFoundError, match="there is no 'tiny' in the folder 'weights'"):
        hub.resolve_name("weights/tiny")  # a path, since ./weights exists: no request to the hub


def test_unreachable_hub_says_so(fake_hub, monkeypatch):
    fake_hub.stop()
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # huggingface_hub's pauses between its retries
    with pytest.raises(OSError, match=f"cannot download {REPO_ID}/config.json: the hub .* is out of reach"):
        FlaubertModel.from_pretrained(REPO_ID)


def test_cut_transfer_resumes_with_a_range_request(fake_hub, tmp_path):
    """The retry asks only for the bytes after what huggingface_hub had written.

    The weights are padded to 12 MiB by an unused tensor because huggingface_hub gathers 10 MiB in memory before
    writing: a cut loses what it had not written yet (so a small file is simply fetched again from the start).
    """
    state = {**load_state_dict(FIXTURES / "tiny-token-classification"),
             "unused.weight": np.zeros(3 * 2**20, np.float32)}
    save_state_dict(state, tmp_path)
    big = (tmp_path / "model.safetensors").read_bytes()
    fake_hub.repos[REPO_ID]["model.safetensors"] = big
    cut = 11 * 2**20
    fake_hub.cuts["model.safetensors"] = [cut]
    with pytest.warns(UserWarning, match="unused.weight"):
        model = FlaubertForTokenClassification.from_pretrained(REPO_ID)
    np.testing.assert_array_equal(ner_logits(model), REFERENCE)
    first, resumed = [r for m, _, f, r in fake_hub.requests if m == "GET" and f == "model.safetensors"]
    start = FakeHub.range_start(resumed)
    assert first is None and 0 < start <= cut
    assert fake_hub.bytes_sent["model.safetensors"] == cut + len(big) - start


def test_a_transfer_that_keeps_failing_leaves_no_half_file(fake_hub, monkeypatch):
    fake_hub.hard_cuts = True
    fake_hub.cuts["model.safetensors"] = [1000] * 10  # more than huggingface_hub retries
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # its pause between retries
    with pytest.raises(OSError, match=f"cannot download {REPO_ID}/model.safetensors"):
        FlaubertModel.from_pretrained(REPO_ID)
    blobs = fake_hub.cache / "models--someone--flaubert-ner" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == [etag("config.json", NER_FILES["config.json"])]  # no partial
    assert not (blobs.parent / "snapshots" / COMMIT / "model.safetensors").exists()
    with pytest.raises(OSError, match="has no weights in the cache"):  # never a half file loaded
        FlaubertModel.from_pretrained(REPO_ID, local_files_only=True)


def test_bytes_that_do_not_match_their_etag_are_deleted(fake_hub):
    fake_hub.wrong_etag.add("model.safetensors")
    with pytest.raises(ValueError, match="checksum mismatch for model.safetensors: the hub's ETag is"):
        FlaubertModel.from_pretrained(REPO_ID)
    assert not (fake_hub.cache / "models--someone--flaubert-ner" / "snapshots" / COMMIT / "model.safetensors").exists()


# ----------------------------------------------------------------------------------------------------------------
# A fresh process, configured by the environment only; transformers reading the same cache
# ----------------------------------------------------------------------------------------------------------------


def python(code: str, env: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    for var in ("HF_TOKEN", "HF_HUB_CACHE", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        environment.pop(var, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)


def test_fresh_process_downloads_then_loads_offline(fake_hub, tmp_path):
    code = ("from minflaubert import AutoModelForTokenClassification as A; import numpy as np; "
            f"m = A.from_pretrained({REPO_ID!r}); "
            f"print(np.abs(m(np.array({INPUT_IDS.tolist()})).logits).sum())")
    env = {"HF_HOME": str(tmp_path / "home"), "HF_ENDPOINT": fake_hub.endpoint, "HF_HUB_OFFLINE": "0"}
    online = python(code, env)
    assert online.returncode == 0, online.stderr
    fake_hub.stop()
    offline = python(code, {**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout == online.stdout
    missing = python(code.replace(REPO_ID, "someone/other"), {**env, "HF_HUB_OFFLINE": "1"})
    assert "someone/other (revision main) is not in the huggingface_hub cache" in missing.stderr


# ----------------------------------------------------------------------------------------------------------------
# The name rules
# ----------------------------------------------------------------------------------------------------------------


def test_registry_maps_the_four_short_names_to_their_repositories():
    known = hub.registry()
    assert sorted(known) == sorted(
        ["flaubert_small_cased", "flaubert_base_uncased", "flaubert_base_cased", "flaubert_large_cased"]
    )
    for name in known:
        assert hub.repo_id_of(name) == f"flaubert/{name}"
    assert hub.repo_id_of("someone/model") == "someone/model"
    assert known["flaubert_large_cased"]["architecture"]["pre_norm"] is True


def test_folders_come_first(tmp_path, monkeypatch):
    assert hub.resolve_name(tmp_path) == tmp_path  # an existing folder, as is
    monkeypatch.setenv(hub.WEIGHTS_ENV, str(tmp_path / "weights"))
    (tmp_path / "weights" / "my_model").mkdir(parents=True)
    assert hub.resolve_name("my_model") == tmp_path / "weights" / "my_model"  # a plain name under weights/


def test_weights_live_in_the_checkout_by_default(monkeypatch):
    monkeypatch.delenv(hub.WEIGHTS_ENV, raising=False)
    assert hub.weights_root() == REPO / "weights"


def test_transformers_and_minflaubert_share_the_cache(fake_hub, tmp_path, monkeypatch, transformers):
    """A fine-tune saved by transformers (random weights, the real layout): each library reads what the other
    downloaded into the cache, and both give the same logits."""
    from reference import build_model, run_model

    from minflaubert import AutoModelForTokenClassification
    from minflaubert.apps.pipelines import pipeline

    labels = {0: "O", 1: "B-PER", 2: "I-PER"}
    config = {"vocab_size": json.loads(NER_FILES["config.json"])["vocab_size"], "emb_dim": 32, "n_layers": 2,
              "n_heads": 4, "max_position_embeddings": 64, "id2label": labels,
              "label2id": {name: i for i, name in labels.items()}}
    reference = build_model("FlaubertForTokenClassification", config)
    reference.save_pretrained(tmp_path / "saved")
    files = files_of(tmp_path / "saved")
    files.update({name: NER_FILES[name] for name in ("vocab.json", "merges.txt", "tokenizer_config.json")})
    fake_hub.repos.update({"someone/ours-first": files, "someone/theirs-first": files})
    expected = run_model(reference, {"input_ids": INPUT_IDS, "attention_mask": INPUT_IDS != 2}, {})["logits"]
    cache = str(fake_hub.cache)

    # minflaubert downloads, transformers reads the cache with no network
    ours = AutoModelForTokenClassification.from_pretrained("someone/ours-first")
    theirs = transformers.AutoModelForTokenClassification.from_pretrained("someone/ours-first", cache_dir=cache,
                                                                          local_files_only=True)
    assert_close(run_model(theirs, {"input_ids": INPUT_IDS}, {})["logits"], ner_logits(ours), "shared cache")
    assert_close(ner_logits(ours), expected, "shared cache")

    # transformers downloads (model and tokenizer), minflaubert loads offline what it left there
    transformers.AutoModelForTokenClassification.from_pretrained("someone/theirs-first", cache_dir=cache)
    transformers.AutoTokenizer.from_pretrained("someone/theirs-first", cache_dir=cache)
    fake_hub.stop()
    go_offline(monkeypatch)
    offline = AutoModelForTokenClassification.from_pretrained("someone/theirs-first")
    assert_close(ner_logits(offline), expected, "shared cache")
    entities = pipeline("token-classification", "someone/theirs-first")("Marie habite à Lyon.")
    assert all(entity["entity"] in labels.values() for entity in entities)

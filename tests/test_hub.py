"""Downloading checkpoints, tested for real: an HTTP server on 127.0.0.1 plays the model hub.

No client is mocked: both download clients (huggingface_hub and the urllib one) talk HTTP to ``FakeHub``, which
serves files from memory the way the hub does (HEAD metadata headers, Range requests, 404 with the hub's error
code) and can misbehave on request: cut a transfer after N bytes, or run a check while a file is half sent.
Only the registry is swapped for a small one whose checksums we know.
"""
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO, require
from minflaubert import hub

REPO_ID = "flaubert/tiny_test"
FILES = {
    "config.json": b'{"emb_dim": 8, "n_layers": 1}',
    "pytorch_model.bin": bytes(range(256)) * 400,  # 100 kB, several reads of the client's loop
    "vocab.json": b'{"<s>": 0}',
    "merges.txt": b"a b\n",
}  # tokenizer_config.json and model.safetensors are optional and not served: the server answers 404


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# The fake hub
# ----------------------------------------------------------------------------------------------------------------


class FakeHub:
    """The hub's ``/{repo}/resolve/{revision}/{file}`` URLs, served from memory on a random loopback port.

    ``cuts[file] = [n1, n2, ...]``: the next GETs of ``file`` send only n1, n2... bytes of their body, then hang up.
    ``honour_ranges = False``: answer every GET with the whole file (200), as some proxies and CDNs do.
    ``hard_cuts = True``: cuts end with a TCP reset (a dropped connection) rather than a clean close.
    ``midway[file] = callable``: called (in the server thread) once half of that file's body has been sent.
    """

    MAX_REQUESTS = 200  # a client stuck in a loop gets errors, never an endless conversation

    def __init__(self, files: dict):
        self.files = files
        self.cuts: dict[str, list[int]] = {}
        self.honour_ranges = True
        self.hard_cuts = False
        self.midway: dict = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, file, Range header)
        self.bytes_sent = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def ranges(self, file: str) -> list:
        return [r for method, f, r in self.requests if f == file and method == "GET"]

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
        prefix = f"/{REPO_ID}/resolve/main/"
        file = handler.path.removeprefix(prefix)
        self.requests.append((handler.command, file, handler.headers.get("Range")))
        data = self.files.get(file) if handler.path.startswith(prefix) else None
        if len(self.requests) > self.MAX_REQUESTS:
            return self.status_only(handler, 503)
        if data is None:
            return self.status_only(handler, 404, {"X-Error-Code": "EntryNotFound"})
        start = self.range_start(handler.headers.get("Range")) if self.honour_ranges else 0
        if start >= len(data) > 0:
            return self.status_only(handler, 416, {"Content-Range": f"bytes */{len(data)}"})
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        # The metadata huggingface_hub reads from a HEAD answer (and refuses to go on without).
        handler.send_header("X-Repo-Commit", "0123456789abcdef" * 2 + "01234567")
        handler.send_header("ETag", f'"{sha256(data)}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if send_body:
            self.send_body(handler, file, data, start)

    def send_body(self, handler, file: str, data: bytes, start: int) -> None:
        """Write the body from ``start``, honouring a planned cut and the midway check."""
        end = len(data)
        cut = bool(self.cuts.get(file))
        if cut:
            end = min(end, start + self.cuts[file].pop(0))
        half = len(data) // 2
        for lo in range(start, end, 4096):
            hi = min(lo + 4096, end)
            if lo < half <= hi and file in self.midway:
                self.midway.pop(file)()
            handler.wfile.write(data[lo:hi])
            self.bytes_sent[file] += hi - lo
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


@pytest.fixture
def fake_hub():
    server = FakeHub(dict(FILES))
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """Replace the registry by one tiny checkpoint whose files the fake hub serves.

    Returns ``set_sha256(file, digest)`` for the tests that need another checksum in it.
    """
    files = [{"name": name, "required": True, "sha256": sha256(data)} for name, data in FILES.items()]
    files += [{"name": name, "required": False, "sha256": None} for name in ("tokenizer_config.json", "model.safetensors")]
    path = tmp_path / "registry.json"

    def write():
        entry = {"repo_id": REPO_ID, "revision": "main", "architecture": {}, "files": files}
        path.write_text(json.dumps({"checkpoints": {"tiny_test": entry}}))

    def set_sha256(name: str, digest: str) -> None:
        next(f for f in files if f["name"] == name)["sha256"] = digest
        write()

    write()
    monkeypatch.setattr(hub, "REGISTRY_FILE", path)
    for var in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return set_sha256


def hf_available() -> bool:
    try:
        import huggingface_hub  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture(params=["urllib", "huggingface_hub"])
def client(request):
    if request.param == "huggingface_hub":
        require(hf_available(), "huggingface_hub is not installed (pip install -e '.[download]')")
    return request.param


def fetch(fake_hub, dest, client, **kwargs):
    return hub.download("tiny_test", dest=dest, endpoint=fake_hub.endpoint, progress=False, client=client, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------------------------


def test_full_download_skips_missing_optional_files(fake_hub, tiny_registry, tmp_path, client):
    dest = fetch(fake_hub, tmp_path / "tiny", client)
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)  # no .part, no staging folder, no optional file
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    assert "model.safetensors" in {file for _, file, _ in fake_hub.requests}  # asked for, answered 404, skipped


def test_missing_required_file_is_an_error(fake_hub, tiny_registry, tmp_path, client):
    del fake_hub.files["vocab.json"]
    with pytest.raises(OSError, match=r"/resolve/main/vocab\.json does not exist \(404\)"):
        fetch(fake_hub, tmp_path / "tiny", client)


def test_interrupted_transfer_resumes_without_resending(fake_hub, tiny_registry, tmp_path, client):
    """The retry asks only for the bytes after what the client had saved.

    The file is 12 MiB because huggingface_hub gathers 10 MiB (its DOWNLOAD_CHUNK_SIZE) in memory before writing:
    what it had not written yet is lost with the connection and asked again; the urllib client loses nothing.
    """
    big = bytes(range(256)) * (48 * 1024)
    fake_hub.files["pytorch_model.bin"] = big
    tiny_registry("pytorch_model.bin", sha256(big))
    cut = 11 * 2**20
    fake_hub.cuts["pytorch_model.bin"] = [cut]
    dest = fetch(fake_hub, tmp_path / "tiny", client)
    assert (dest / "pytorch_model.bin").read_bytes() == big
    first, resumed = fake_hub.ranges("pytorch_model.bin")
    start = FakeHub.range_start(resumed)
    assert first is None and 0 < start <= cut
    assert start == cut or client == "huggingface_hub"
    assert fake_hub.bytes_sent["pytorch_model.bin"] == cut + len(big) - start


def test_urllib_resumes_across_calls_from_the_kept_part(fake_hub, tiny_registry, tmp_path):
    fake_hub.cuts["pytorch_model.bin"] = [10_000] * hub.ATTEMPTS  # every attempt of the first call is cut
    dest = tmp_path / "tiny"
    with pytest.raises(OSError, match="run the download again to resume"):
        fetch(fake_hub, dest, "urllib")
    assert not (dest / "pytorch_model.bin").exists()
    assert (dest / "pytorch_model.bin.part").stat().st_size == 10_000 * hub.ATTEMPTS

    fetch(fake_hub, dest, "urllib")
    assert (dest / "pytorch_model.bin").read_bytes() == FILES["pytorch_model.bin"]
    assert fake_hub.ranges("pytorch_model.bin")[-1] == f"bytes={10_000 * hub.ATTEMPTS}-"
    assert fake_hub.bytes_sent["pytorch_model.bin"] == len(FILES["pytorch_model.bin"])
    assert not (dest / "pytorch_model.bin.part").exists()


def test_complete_part_is_published_without_refetching(fake_hub, tiny_registry, tmp_path):
    dest = tmp_path / "tiny"
    dest.mkdir()
    (dest / "pytorch_model.bin.part").write_bytes(FILES["pytorch_model.bin"])  # crashed just before the rename
    fetch(fake_hub, dest, "urllib")
    assert (dest / "pytorch_model.bin").read_bytes() == FILES["pytorch_model.bin"]
    assert fake_hub.bytes_sent["pytorch_model.bin"] == 0


def test_server_ignoring_range_restarts_the_part(fake_hub, tiny_registry, tmp_path):
    fake_hub.honour_ranges = False
    dest = tmp_path / "tiny"
    dest.mkdir()
    (dest / "pytorch_model.bin.part").write_bytes(b"x" * 5000)
    fetch(fake_hub, dest, "urllib")
    assert fake_hub.ranges("pytorch_model.bin") == ["bytes=5000-"]
    assert (dest / "pytorch_model.bin").read_bytes() == FILES["pytorch_model.bin"]  # not 5000 x + the file


def test_final_name_absent_until_complete(fake_hub, tiny_registry, tmp_path, client):
    dest = tmp_path / "tiny"
    seen = {}

    def look():  # runs in the server thread, half-way through the file: wait (bounded) for the client's temporary
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (set(os.listdir(dest)) - {"config.json"}):
            time.sleep(0.01)
        seen["others"] = set(os.listdir(dest)) - {"config.json"}
        seen["final"] = (dest / "pytorch_model.bin").exists()

    fake_hub.midway["pytorch_model.bin"] = look
    fetch(fake_hub, dest, client)
    assert seen["others"] and seen["final"] is False  # the bytes went to a temporary name meanwhile
    assert (dest / "pytorch_model.bin").read_bytes() == FILES["pytorch_model.bin"]


def test_checksum_mismatch_leaves_nothing(fake_hub, tiny_registry, tmp_path, client):
    wrong = sha256(b"something else")
    tiny_registry("pytorch_model.bin", wrong)
    dest = tmp_path / "tiny"
    with pytest.raises(ValueError) as error:
        fetch(fake_hub, dest, client)
    message = str(error.value)
    assert "pytorch_model.bin" in message and wrong in message and sha256(FILES["pytorch_model.bin"]) in message
    assert sorted(p.name for p in dest.iterdir()) == ["config.json"]  # verified before it; no leftovers after it


def test_present_files_are_not_fetched_again(fake_hub, tiny_registry, tmp_path, client):
    dest = fetch(fake_hub, tmp_path / "tiny", client)
    before = len(fake_hub.requests)
    fetch(fake_hub, dest, client)
    assert {file for _, file, _ in fake_hub.requests[before:]} == {"tokenizer_config.json", "model.safetensors"}


def test_present_file_with_wrong_checksum_is_reported(fake_hub, tiny_registry, tmp_path):
    dest = tmp_path / "tiny"
    dest.mkdir()
    (dest / "config.json").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="checksum mismatch for .*config.json"):
        fetch(fake_hub, dest, "urllib")


def test_without_huggingface_hub_auto_uses_urllib(fake_hub, tiny_registry, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)  # makes the import fail
    dest = fetch(fake_hub, tmp_path / "tiny", "auto")
    assert (dest / "config.json").read_bytes() == FILES["config.json"]
    assert all(method == "GET" for method, _, _ in fake_hub.requests)  # huggingface_hub would have sent HEADs


def test_unreachable_server_says_so(tiny_registry, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(OSError, match="offline or unreachable") as error:
        hub.download("tiny_test", dest=tmp_path / "tiny", endpoint=endpoint, progress=False, client="urllib")
    assert f"{endpoint}/{REPO_ID}/resolve/main/config.json" in str(error.value)


def test_dropped_connection_is_an_oserror(fake_hub, tiny_registry, tmp_path, client):
    fake_hub.hard_cuts = True
    fake_hub.cuts["pytorch_model.bin"] = [1000] * 10  # more than either client retries
    with pytest.raises(OSError, match="pytorch_model.bin"):
        fetch(fake_hub, tmp_path / "tiny", client)
    assert not (tmp_path / "tiny" / "pytorch_model.bin").exists()


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="flaubert_base_cased"):
        hub.download("flaubert_huge", dest=tmp_path)
    with pytest.raises(ValueError, match="unknown client"):
        hub.download("flaubert_base_cased", dest=tmp_path, client="wget")


# ----------------------------------------------------------------------------------------------------------------
# The registry and resolve_name
# ----------------------------------------------------------------------------------------------------------------


def test_registry_lists_the_four_published_checkpoints():
    known = hub.registry()
    assert sorted(known) == sorted(
        ["flaubert_small_cased", "flaubert_base_uncased", "flaubert_base_cased", "flaubert_large_cased"]
    )
    for name, entry in known.items():
        assert entry["repo_id"] == f"flaubert/{name}"
        files = {f["name"]: f for f in entry["files"]}
        assert files["pytorch_model.bin"]["required"] and not files["model.safetensors"]["required"]
    assert known["flaubert_large_cased"]["architecture"]["pre_norm"] is True
    assert hub.checkpoint("flaubert/flaubert_base_cased")["name"] == "flaubert_base_cased"


def test_resolve_name(tmp_path, monkeypatch):
    assert hub.resolve_name(tmp_path) == tmp_path  # an existing folder, as-is
    monkeypatch.setenv(hub.WEIGHTS_ENV, str(tmp_path / "weights"))
    with pytest.raises(OSError, match="minflaubert download flaubert_base_cased"):
        hub.resolve_name("flaubert_base_cased")
    folder = tmp_path / "weights" / "flaubert_base_cased"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with pytest.raises(OSError, match=r"lacks pytorch_model\.bin, vocab\.json, merges\.txt"):
        hub.resolve_name("flaubert/flaubert_base_cased")
    for name in ("pytorch_model.bin", "vocab.json", "merges.txt"):
        (folder / name).write_text("")
    assert hub.resolve_name("flaubert_base_cased") == folder
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a published checkpoint"):
        hub.resolve_name(tmp_path / "nowhere")


def test_weights_live_in_the_checkout_by_default(monkeypatch):
    monkeypatch.delenv(hub.WEIGHTS_ENV, raising=False)
    assert hub.weights_root() == REPO / "weights"

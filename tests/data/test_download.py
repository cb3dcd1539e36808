"""The real HTTP path against a local server: success, cache, corruption, interruption, offline."""

import hashlib
import http.server
import threading

import pytest

from loopformer.data import download as dl
from loopformer.data.download import DataError, RemoteFile, fetch

PAYLOAD = b"Zwei Hunde spielen im Schnee.\n" * 500


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        if self.path == "/good":
            body = PAYLOAD
        elif self.path == "/corrupt":
            body = PAYLOAD[:-5] + b"XXXXX"
        elif self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dataset(monkeypatch, tmp_path, server):
    """A fake dataset whose files live on the local server; cache in tmp, no mirror."""
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    files = {name: RemoteFile(f"{server}/{name}", sha) for name in ("good", "corrupt", "truncated", "missing")}
    monkeypatch.setitem(dl.DATASETS, "fake", files)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "fake"


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_caches(dataset, monkeypatch):
    path = fetch("fake", "good")
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(dataset) == ["good"]
    # cached: works with the server unreachable
    sha = dl.DATASETS["fake"]["good"].sha256
    monkeypatch.setitem(dl.DATASETS["fake"], "good", RemoteFile("http://127.0.0.1:9/none", sha))
    assert fetch("fake", "good") == path


def test_corrupt_download_is_refused_and_not_kept(dataset):
    with pytest.raises(DataError, match="sha256"):
        fetch("fake", "corrupt")
    assert _leftovers(dataset) == []


def test_interrupted_download_is_refused_and_not_kept(dataset):
    with pytest.raises(DataError, match="interrupted"):
        fetch("fake", "truncated")
    assert _leftovers(dataset) == []


def test_http_error_is_one_line(dataset):
    with pytest.raises(DataError) as err:
        fetch("fake", "missing")
    assert "\n" not in str(err.value)


def test_damaged_cache_entry_is_fetched_again(dataset):
    fetch("fake", "good")
    (dataset / "good").write_bytes(b"garbage")
    assert fetch("fake", "good").read_bytes() == PAYLOAD


def test_offline_without_mirror_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setitem(dl.DATASETS, "fake", {"f": RemoteFile("http://127.0.0.1:9/f", "0" * 64)})
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path))
    with pytest.raises(DataError, match=dl.MIRROR_ENV):
        fetch("fake", "f")


def test_mirror_reads_in_place_and_checks_sha(monkeypatch, tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "f").write_bytes(PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setitem(dl.DATASETS, "fake", {"f": RemoteFile("http://127.0.0.1:9/f", sha), "g": RemoteFile("x", sha)})
    monkeypatch.setenv(dl.MIRROR_ENV, str(tmp_path))
    assert fetch("fake", "f") == tmp_path / "fake" / "f"
    (tmp_path / "fake" / "f").write_bytes(PAYLOAD + b"!")
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch("fake", "f")
    with pytest.raises(DataError, match="not found in the data mirror"):
        fetch("fake", "g")


def test_unknown_dataset_and_file():
    with pytest.raises(DataError, match="unknown dataset"):
        fetch("imagenet", "x")
    with pytest.raises(DataError, match="has no file"):
        fetch("multi30k", "train.fr.gz")


def test_the_real_mirror_matches_the_registry():
    """Every registered file is present in the mirror with the registered checksum."""
    import os

    if not os.environ.get(dl.MIRROR_ENV):
        pytest.skip("no data mirror configured")
    for dataset, files in dl.DATASETS.items():
        for name in files:
            assert fetch(dataset, name).is_file()

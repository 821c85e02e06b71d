"""Checksummed model downloads, against an HTTP server on 127.0.0.1 (no other network)."""

import hashlib
import http.server
import threading
from functools import partial

import pytest
from click.testing import CliRunner

from fastmer import hub
from fastmer.cli import main


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def toy_model(monkeypatch):
    """A registered model whose pinned sha256 is that of known bytes."""
    data = b"toy model bytes " * 1000
    entry = hub.ModelFile("toy", "toy.onnx", "https://example.invalid/toy.onnx", hashlib.sha256(data).hexdigest(),
                          "test", "a toy")
    monkeypatch.setitem(hub.MODEL_FILES, "toy", entry)
    return data


def test_fetch_keeps_a_verified_file(server, cache, toy_model):
    www, base = server
    (www / "toy.onnx").write_bytes(toy_model)
    path = hub.fetch("toy", url=f"{base}/toy.onnx")
    assert path == cache / "models" / "toy.onnx" and path.read_bytes() == toy_model
    assert hub.cached("toy") == path
    (www / "toy.onnx").unlink()  # a verified cached copy needs no network
    assert hub.fetch("toy", url=f"{base}/toy.onnx") == path


def test_fetch_refuses_a_corrupted_file_and_keeps_nothing(server, cache, toy_model):
    www, base = server
    (www / "toy.onnx").write_bytes(toy_model[:-1] + b"X")
    with pytest.raises(ValueError, match="refusing toy .* sha256 .* does not match the pinned"):
        hub.fetch("toy", url=f"{base}/toy.onnx")
    assert hub.cached("toy") is None
    assert not any((cache / "models").iterdir())  # no partial file left behind


def test_a_corrupted_cached_copy_is_replaced(server, cache, toy_model):
    www, base = server
    (www / "toy.onnx").write_bytes(toy_model)
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "toy.onnx").write_bytes(b"truncated")
    assert hub.fetch("toy", url=f"{base}/toy.onnx").read_bytes() == toy_model


def test_fetch_errors(server, cache, toy_model):
    _, base = server
    with pytest.raises(OSError, match="cannot download toy from"):
        hub.fetch("toy", url=f"{base}/missing.onnx")
    with pytest.raises(ValueError, match="only HTTPS"):
        hub.fetch("toy", url="http://example.com/toy.onnx")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        hub.fetch("nope")


def test_pinned_yunet_checksum_matches_the_real_model(shared_dir):
    model = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    assert hub.sha256_of(model) == hub.MODEL_FILES["yunet"].sha256


def test_models_cli_fetch_and_list(server, cache, shared_dir):
    www, base = server
    (www / "yunet.onnx").write_bytes((shared_dir / "models" / "face_detection_yunet_2023mar.onnx").read_bytes())
    runner = CliRunner()
    listed = runner.invoke(main, ["models", "list"])
    assert listed.exit_code == 0 and "yunet" in listed.output and "not downloaded" in listed.output
    fetched = runner.invoke(main, ["models", "fetch", "yunet", "--url", f"{base}/yunet.onnx"])
    assert fetched.exit_code == 0, fetched.output
    assert "sha256 verified" in fetched.output and hub.cached("yunet") is not None
    assert "cached" in runner.invoke(main, ["models", "list"]).output
    (www / "bad.onnx").write_bytes(b"bad")
    refused = runner.invoke(main, ["models", "fetch", "yunet", "--force", "--url", f"{base}/bad.onnx"])
    assert refused.exit_code == 1 and "does not match the pinned" in refused.output
    # the refused download replaced nothing: the verified copy is still there, intact
    assert hub.sha256_of(hub.cached("yunet")) == hub.MODEL_FILES["yunet"].sha256
    assert runner.invoke(main, ["models", "fetch", "dlib"]).exit_code == 2


def test_a_cached_file_is_checked_again_when_loaded(server, cache, toy_model, tmp_path):
    """Issue 17: a cached model was trusted after download; its sha256 is checked on every load."""
    import re

    www, base = server
    (www / "toy.onnx").write_bytes(toy_model)
    path = hub.fetch("toy", url=f"{base}/toy.onnx")
    assert hub.check_cached(path) == "toy"
    path.write_bytes(toy_model[:-1] + b"X")  # corrupted in the cache after the download
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is corrupt or was replaced: sha256 {digest}, expected "
                                         f"{hub.MODEL_FILES['toy'].sha256} .*run `fastmer models fetch toy`"):
        hub.check_cached(path)
    # a file outside the cache has no pinned hash: not checked
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "toy.onnx").write_bytes(b"another model")
    assert hub.check_cached(tmp_path / "mine" / "toy.onnx") is None
    # asked explicitly, a fetch replaces the corrupted copy
    assert hub.fetch("toy", url=f"{base}/toy.onnx").read_bytes() == toy_model
    assert hub.check_cached(path) == "toy"

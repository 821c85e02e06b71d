"""Checksummed model downloads (pooch), against an HTTP server on 127.0.0.1 (no other network)."""

import hashlib
import http.server
import re
import sys
import threading
from functools import partial

import pytest
from click.testing import CliRunner

from fastmer import hub
from fastmer.cli import main


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; records each GET path; answers 503 once for paths in ``fail_once``."""

    hits: list
    fail_once: set

    def do_GET(self):
        self.hits.append(self.path)
        if self.path in self.fail_once:
            self.fail_once.discard(self.path)
            self.send_error(503, "busy, try again")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/www on a free loopback port; yields (folder, base URL, hits, fail_once)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = type("Handler", (_Handler,), {"hits": [], "fail_once": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}", handler.hits, handler.fail_once
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """pooch waits 1 s, 2 s, ... between attempts: recorded, not slept."""
    import types

    import pooch.core

    waits = []
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=waits.append))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    return waits


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
    www, base, *_ = server
    (www / "toy.onnx").write_bytes(toy_model)
    path = hub.fetch("toy", url=f"{base}/toy.onnx")
    assert path == cache / "models" / "toy.onnx" and path.read_bytes() == toy_model
    assert hub.cached("toy") == path
    (www / "toy.onnx").unlink()  # a verified cached copy needs no network
    assert hub.fetch("toy", url=f"{base}/toy.onnx") == path


def test_fetch_refuses_a_corrupted_file_and_keeps_nothing(server, cache, toy_model):
    www, base, *_ = server
    (www / "toy.onnx").write_bytes(toy_model[:-1] + b"X")
    served, pinned = hashlib.sha256(toy_model[:-1] + b"X").hexdigest(), hub.MODEL_FILES["toy"].sha256
    with pytest.raises(ValueError, match=f"refusing toy from {re.escape(base)}/toy.onnx: sha256 {served} does not "
                                         f"match the pinned {pinned}; nothing was kept"):
        hub.fetch("toy", url=f"{base}/toy.onnx")
    assert hub.cached("toy") is None
    assert not any((cache / "models").iterdir())  # no partial file (nor pooch's temporary one) left behind


def test_a_corrupted_cached_copy_is_replaced(server, cache, toy_model):
    www, base, *_ = server
    (www / "toy.onnx").write_bytes(toy_model)
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "toy.onnx").write_bytes(b"truncated")
    assert hub.fetch("toy", url=f"{base}/toy.onnx").read_bytes() == toy_model


def test_fetch_errors(server, cache, toy_model):
    _, base, *_ = server
    with pytest.raises(OSError, match=f"cannot download toy from {re.escape(base)}/missing.onnx: 404"):
        hub.fetch("toy", url=f"{base}/missing.onnx")
    with pytest.raises(ValueError, match="only HTTPS"):
        hub.fetch("toy", url="ftp://127.0.0.1/toy.onnx")
    with pytest.raises(ValueError, match="only HTTPS"):
        hub.fetch("toy", url="http://example.com/toy.onnx")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        hub.fetch("nope")


def test_pinned_yunet_checksum_matches_the_real_model(shared_dir):
    model = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    assert hub.sha256_of(model) == hub.MODEL_FILES["yunet"].sha256


def test_models_cli_fetch_and_list(server, cache, shared_dir):
    www, base, *_ = server
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
    www, base, *_ = server
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


def test_force_downloads_again_and_a_verified_copy_is_not(server, cache, toy_model):
    www, base, hits, _ = server
    (www / "toy.onnx").write_bytes(toy_model)
    path = hub.fetch("toy", url=f"{base}/toy.onnx")
    assert hub.fetch("toy", url=f"{base}/toy.onnx") == path and hits == ["/toy.onnx"]
    assert hub.fetch("toy", url=f"{base}/toy.onnx", force=True) == path and hits == ["/toy.onnx"] * 2
    assert path.read_bytes() == toy_model and oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in (cache / "models").iterdir()] == ["toy.onnx"]


def test_a_failed_attempt_is_retried(server, cache, toy_model, no_waiting):
    www, base, hits, fail_once = server
    (www / "toy.onnx").write_bytes(toy_model)
    fail_once.add("/toy.onnx")
    assert hub.fetch("toy", url=f"{base}/toy.onnx").read_bytes() == toy_model
    assert hits == ["/toy.onnx"] * 2 and no_waiting == [1]  # one retry, after pooch's 1 s wait
    fail_once.add("/toy.onnx")
    with pytest.raises(OSError, match="cannot download toy from .*503"):
        hub.fetch("toy", url=f"{base}/toy.onnx", force=True, retries=0)
    assert hub.cached("toy").read_bytes() == toy_model  # the verified copy is still there


def test_a_corrupted_download_is_retried_then_refused(server, cache, toy_model, no_waiting):
    www, base, hits, _ = server
    (www / "toy.onnx").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="does not match the pinned"):
        hub.fetch("toy", url=f"{base}/toy.onnx")
    assert len(hits) == 1 + hub.RETRIES and no_waiting == [1, 2]
    assert not any((cache / "models").iterdir())


def test_mirror_variable(server, cache, toy_model, monkeypatch):
    www, base, hits, _ = server
    (www / "mirror").mkdir()
    (www / "mirror" / "toy.onnx").write_bytes(toy_model)
    monkeypatch.setenv(hub.MIRROR_ENV, f"{base}/mirror/")
    assert hub.source_url("toy") == f"{base}/mirror/toy.onnx"
    assert hub.fetch("toy").read_bytes() == toy_model  # the pinned example.invalid URL is never tried
    assert hits == ["/mirror/toy.onnx"]
    # --url still wins over the mirror
    (www / "toy.onnx").write_bytes(toy_model)
    hub.fetch("toy", url=f"{base}/toy.onnx", force=True)
    assert hits[-1] == "/toy.onnx"
    # the mirror obeys the same rule: HTTPS, or HTTP from the loopback only
    monkeypatch.setenv(hub.MIRROR_ENV, "http://mirror.example.com/models")
    with pytest.raises(ValueError, match="refusing to download from http://mirror.example.com/models/toy.onnx: only "
                                         "HTTPS"):
        hub.fetch("toy", force=True)
    monkeypatch.setenv(hub.MIRROR_ENV, "")
    assert hub.source_url("toy") == "https://example.invalid/toy.onnx"


def test_cache_location(tmp_path, monkeypatch):
    import pooch

    monkeypatch.delenv("FASTMER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == pooch.os_cache("fastmer")
    if sys.platform.startswith("linux"):  # the same folder as before pooch: existing caches still work
        assert hub.model_path("yunet") == tmp_path / "xdg" / "fastmer" / "models" / "face_detection_yunet_2023mar.onnx"
    monkeypatch.setenv("FASTMER_CACHE", str(tmp_path / "mine"))
    assert hub.model_path("yunet") == tmp_path / "mine" / "models" / "face_detection_yunet_2023mar.onnx"


def test_progress_bar_only_on_a_terminal(server, cache, toy_model, monkeypatch):
    import pooch

    www, base, *_ = server
    (www / "toy.onnx").write_bytes(toy_model)
    made = []

    class Spy(pooch.HTTPDownloader):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(pooch, "HTTPDownloader", Spy)
    hub.fetch("toy", url=f"{base}/toy.onnx", timeout=5)
    assert made == [{"progressbar": False, "timeout": 5}]  # pytest's stderr is not a terminal
    monkeypatch.setattr(sys, "stderr", type("Tty", (), {"isatty": lambda self: True})())
    assert hub.progressbar_wanted()
    monkeypatch.setattr(sys, "stderr", type("Pipe", (), {"isatty": lambda self: False})())
    assert not hub.progressbar_wanted()


def test_install_a_local_file(cache, toy_model, tmp_path):
    """Offline: a copy brought to the machine is checked and copied into the cache."""
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(toy_model + b"!")
    digest = hashlib.sha256(wrong.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"refusing toy from {re.escape(str(wrong))}: sha256 {digest} does not match "
                                         f"the pinned {hub.MODEL_FILES['toy'].sha256}; the cache was not changed"):
        hub.install("toy", wrong)
    assert not cache.exists()  # nothing created
    good = tmp_path / "good.onnx"
    good.write_bytes(toy_model)
    path = hub.install("toy", good)
    assert path == cache / "models" / "toy.onnx" and path.read_bytes() == toy_model and good.is_file()
    assert hub.check_cached(path) == "toy"
    with pytest.raises(ValueError, match="does not match the pinned"):
        hub.install("toy", wrong)
    assert path.read_bytes() == toy_model and [p.name for p in (cache / "models").iterdir()] == ["toy.onnx"]
    with pytest.raises(FileNotFoundError):
        hub.install("toy", tmp_path / "absent.onnx")


def test_models_cli_fetch_from_a_local_file(cache, shared_dir, tmp_path):
    real = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    runner = CliRunner()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(real.read_bytes()[:-1])
    refused = runner.invoke(main, ["models", "fetch", "yunet", "--from", str(bad)])
    assert refused.exit_code == 1 and "does not match the pinned" in refused.output and "not changed" in refused.output
    assert hub.cached("yunet") is None
    fetched = runner.invoke(main, ["models", "fetch", "yunet", "--from", str(real)])
    assert fetched.exit_code == 0, fetched.output
    assert "sha256 verified, copied from" in fetched.output
    assert hub.sha256_of(hub.cached("yunet")) == hub.MODEL_FILES["yunet"].sha256
    again = runner.invoke(main, ["models", "fetch", "yunet", "--from", str(bad)])
    assert again.exit_code == 1 and hub.sha256_of(hub.cached("yunet")) == hub.MODEL_FILES["yunet"].sha256
    both = runner.invoke(main, ["models", "fetch", "yunet", "--from", str(real), "--url", "https://x.invalid/y"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    assert runner.invoke(main, ["models", "fetch", "yunet", "--from", str(tmp_path / "absent")]).exit_code == 2


def test_models_cli_help_and_list(cache, monkeypatch):
    runner = CliRunner()
    helped = runner.invoke(main, ["models", "fetch", "-h"])
    assert helped.exit_code == 0 and "--from FILE" in helped.output and "FASTMER_MODEL_MIRROR" in helped.output
    assert "[default: 2" in helped.output
    monkeypatch.setenv(hub.MIRROR_ENV, "https://mirror.example.com/m")
    listed = runner.invoke(main, ["models", "list"])
    assert listed.exit_code == 0 and f"cache: {cache / 'models'}" in listed.output
    assert "source: https://mirror.example.com/m/face_detection_yunet_2023mar.onnx" in listed.output


def test_models_cli_imports_neither_pooch_nor_torch():
    import subprocess

    code = ("import sys\nfrom click.testing import CliRunner\nfrom fastmer.cli import main\n"
            "assert CliRunner().invoke(main, ['models', 'fetch', '-h']).exit_code == 0\n"
            "assert 'pooch' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)

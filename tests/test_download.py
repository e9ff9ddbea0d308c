"""The download client against a real local HTTP server (127.0.0.1, threaded, Range -> 206)."""
import hashlib
import io
import os
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from pipeline.data.download import DownloadError, InterruptedDownload, download
from pipeline.data.raw_datasets import fetch_dataset, load_raw
from pipeline.data.sets import Source
from pipeline.data.sets import cityscapes as cityscapes_module
from pipeline.data.sets import facade as facade_module
from pipeline.data.sets.cityscapes import cityscapes_login

PAYLOAD = bytes(range(256)) * 4096 + b"tail"       # ~1 MiB, not a multiple of the chunk size
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves ``files`` (path -> bytes; PAYLOAD at /file by default) with Range support.
    Options: cut the first response after ``cut_at`` body bytes, ignore Range headers, and
    ``login=(user, password)``: a Cityscapes-like form at /login/ whose cookie is required for
    paths under /file-handling/ (without it they answer an HTML login page)."""

    def __init__(self, files=None, cut_at=None, honour_range=True, login=None):
        self.files = files or {"/file": PAYLOAD}
        self.cut_at, self.honour_range, self.login = cut_at, honour_range, login
        self.ranges, self.lock = [], threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body, content_type="text/html", extra=()):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in extra:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                form = urllib.parse.parse_qs(
                    self.rfile.read(int(self.headers["Content-Length"])).decode())
                given = (form.get("username", [""])[0], form.get("password", [""])[0])
                if self.path == "/login/" and owner.login and given == owner.login \
                        and form.get("submit") == ["Login"]:
                    self._send(200, b"<html>Welcome</html>",
                               extra=[("Set-Cookie", "sessionid=ok; Path=/")])
                else:
                    self._send(200, b'<form><input name="password"></form>')

            def do_GET(self):
                if self.path not in owner.files:
                    self.send_error(404)
                    return
                if (owner.login and self.path.startswith("/file-handling/")
                        and "sessionid=ok" not in (self.headers.get("Cookie") or "")):
                    self._send(200, b'<html><form><input name="password"></form></html>')
                    return
                payload = owner.files[self.path]
                range_header = self.headers.get("Range")
                with owner.lock:
                    owner.ranges.append(range_header)
                    first = len(owner.ranges) == 1
                start = 0
                if range_header and owner.honour_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(payload):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(payload)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(payload) - 1}/{len(payload)}")
                else:
                    self.send_response(200)
                body = payload[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if first and owner.cut_at is not None:
                    self.wfile.write(body[:owner.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)      # the peer sees EOF mid-body
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.root + "/file"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_full_download_verifies_sha256(tmp_path):
    dest = str(tmp_path / "f.bin")
    with _Server() as server:
        assert download(server.url, dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD),
                        chunk=65536, progress=False) == dest
    assert open(dest, "rb").read() == PAYLOAD
    assert not os.path.exists(dest + ".part")
    assert server.ranges == [None]


def test_resume_after_cut_connection(tmp_path):
    dest = str(tmp_path / "f.bin")
    cut = 300_000
    with _Server(cut_at=cut) as server:
        with pytest.raises(InterruptedDownload, match="resume"):
            download(server.url, dest, sha256=PAYLOAD_SHA, chunk=65536, progress=False)
        assert not os.path.exists(dest)
        kept = os.path.getsize(dest + ".part")
        assert 0 < kept <= cut
        download(server.url, dest, sha256=PAYLOAD_SHA, chunk=65536, progress=False)
    assert server.ranges == [None, f"bytes={kept}-"]
    assert open(dest, "rb").read() == PAYLOAD
    assert not os.path.exists(dest + ".part")


def test_retries_resume_within_one_call(tmp_path):
    dest = str(tmp_path / "f.bin")
    with _Server(cut_at=100_000) as server:
        download(server.url, dest, size=len(PAYLOAD), chunk=32768, retries=2, progress=False)
    assert server.ranges[0] is None and server.ranges[1].startswith("bytes=")
    assert open(dest, "rb").read() == PAYLOAD


def test_server_ignoring_range_restarts(tmp_path):
    dest = str(tmp_path / "f.bin")
    with open(dest + ".part", "wb") as f:
        f.write(b"garbage that is not the file's start")
    with _Server(honour_range=False) as server:
        download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert server.ranges[0] is not None         # it asked to resume, got 200, started over
    assert open(dest, "rb").read() == PAYLOAD


def test_complete_part_file_gets_416_and_finishes(tmp_path):
    dest = str(tmp_path / "f.bin")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD)
    with _Server() as server:
        download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert open(dest, "rb").read() == PAYLOAD


def test_checksum_mismatch_removes_part_and_names_both_hashes(tmp_path):
    dest = str(tmp_path / "f.bin")
    wrong = "0" * 64
    with _Server() as server:
        with pytest.raises(DownloadError) as err:
            download(server.url, dest, sha256=wrong, progress=False)
    message = str(err.value)
    assert server.url in message and wrong in message and PAYLOAD_SHA in message
    assert "\n" not in message
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_http_error_is_one_line(tmp_path):
    dest = str(tmp_path / "x")
    with _Server() as server:
        with pytest.raises(DownloadError, match="HTTP 404") as err:
            download(server.url + "-missing", dest, progress=False)
    assert "\n" not in str(err.value)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_fetch_facade_downloads_and_prepare_extracts_elsewhere(tmp_path, monkeypatch):
    """fetch_dataset end to end with the registry pointed at the local server."""
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(jpg, "JPEG")
    label = Image.fromarray(np.full((30, 40), 3, np.uint8))
    label.putpalette([0, 0, 0, 0, 0, 170, 0, 0, 255, 0, 85, 255])   # mode P, index 3 kept
    label.save(png, "PNG")
    files = {"/base.zip": _zip_bytes({"base/cmp_b0001.jpg": jpg.getvalue(),
                                      "base/cmp_b0001.png": png.getvalue(),
                                      "base/cmp_b0002.jpg": jpg.getvalue(),
                                      "base/cmp_b0002.png": png.getvalue()}),
             "/extended.zip": _zip_bytes({"extended/cmp_x0001.jpg": jpg.getvalue(),
                                          "extended/cmp_x0001.png": png.getvalue()})}
    raw = str(tmp_path / "raw")
    with _Server(files=files) as server:
        monkeypatch.setattr(facade_module, "SOURCES", [
            Source(server.root + "/base.zip", "facade/CMP_facade_DB_base.zip",
                   size=len(files["/base.zip"]),
                   sha256=hashlib.sha256(files["/base.zip"]).hexdigest()),
            Source(server.root + "/extended.zip", "facade/CMP_facade_DB_extended.zip")])
        fetch_dataset("facade", raw)
    # the raw folder (what `dvc add` tracks) holds the archives only, never their extraction
    assert sorted(os.listdir(os.path.join(raw, "facade"))) == [
        "CMP_facade_DB_base.zip", "CMP_facade_DB_extended.zip"]
    extracted = str(tmp_path / "extracted")
    data = load_raw("facade", raw, facade_test=1, progress=False, extract_dir=extracted)
    assert data["train"].names == ["cmp_b0001", "cmp_x0001"]
    assert (data["test"].labels == 3).all()
    assert sorted(os.listdir(os.path.join(extracted, "facade", "base"))) == [
        "cmp_b0001.jpg", "cmp_b0001.png", "cmp_b0002.jpg", "cmp_b0002.png"]
    assert sorted(os.listdir(os.path.join(raw, "facade"))) == [
        "CMP_facade_DB_base.zip", "CMP_facade_DB_extended.zip"]


def test_cityscapes_login_client(tmp_path, monkeypatch):
    """The login form client and the cookie-protected package download (a local stand-in for
    the site: POST username/password/submit=Login sets a session cookie)."""
    gt = _zip_bytes({"gtFine/train/c/c_0_1_gtFine_labelIds.png": b"x"})
    files = {"/file-handling/?packageID=1": gt, "/file-handling/?packageID=3": b"y" * 1000}
    with _Server(files=files, login=("alice", "s3cret")) as server:
        with pytest.raises(DownloadError, match="did not accept the login for 'alice'"):
            cityscapes_login("alice", "wrong", server.root + "/login/")
        # Without the cookie the package url answers an HTML login page: refused.
        with pytest.raises(DownloadError, match="HTML page"):
            download(server.root + "/file-handling/?packageID=1", str(tmp_path / "x.zip"),
                     progress=False)
        assert not os.path.exists(tmp_path / "x.zip")
        opener = cityscapes_login("alice", "s3cret", server.root + "/login/")
        dest = download(server.root + "/file-handling/?packageID=1",
                        str(tmp_path / "gtFine_trainvaltest.zip"), opener=opener,
                        progress=False)
        assert open(dest, "rb").read() == gt

        raw = tmp_path / "raw"
        monkeypatch.setattr(cityscapes_module, "LOGIN_URL", server.root + "/login/")
        monkeypatch.setattr(cityscapes_module, "PACKAGE_URL",
                            server.root + "/file-handling/?packageID={}")
        monkeypatch.setenv("CITYSCAPES_USERNAME", "alice")
        monkeypatch.setenv("CITYSCAPES_PASSWORD", "s3cret")
        with pytest.raises(ValueError, match="leftImg8bit_trainvaltest.zip: corrupt"):
            fetch_dataset("cityscapes", str(raw))   # the stand-in leftImg8bit zip is junk
    assert (raw / "gtFine_trainvaltest.zip").read_bytes() == gt
    assert (raw / "leftImg8bit_trainvaltest.zip").read_bytes() == b"y" * 1000
    assert not (raw / "gtFine").exists()   # downloads are never extracted in the raw folder

"""The download client against a real local HTTP server (127.0.0.1, threaded, Range -> 206)."""
import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.download import DownloadError, InterruptedDownload, download

PAYLOAD = bytes(range(256)) * 4096 + b"tail"       # ~1 MiB, not a multiple of the chunk size
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves PAYLOAD at /file. Options: cut the first response after `cut_at` body bytes,
    ignore Range headers. Records each request's Range header."""

    def __init__(self, cut_at=None, honour_range=True):
        self.cut_at, self.honour_range = cut_at, honour_range
        self.ranges, self.lock = [], threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/file":
                    self.send_error(404)
                    return
                range_header = self.headers.get("Range")
                with owner.lock:
                    owner.ranges.append(range_header)
                    first = len(owner.ranges) == 1
                start = 0
                if range_header and owner.honour_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
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
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
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

"""Fetching the raw datasets: a resumable, verifying HTTP client. Each dataset's sources and how
it is fetched are in its registry module (pipeline.data.sets); raw_datasets.fetch_dataset runs
that.

``download`` writes into ``dest + ".part"``, resumes it with an HTTP Range request, checks the size
and sha256 when they are known, and only then fsyncs and renames the part file to ``dest``: a file
at ``dest`` is always complete. Fetching never extracts: the raw folder holds what `dvc add`
registered (`data.dvc`), and the prepare stage extracts into its own output folder
(artifacts/raw/<dataset>).

Expected sizes and sha256 digests of the public files could not be checked offline, so they are
``None`` in the datasets' ``SOURCES``: those downloads are verified only against the server's
Content-Length. Fill them in once a known-good copy exists.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from http.client import HTTPException

from tqdm import tqdm

from pipeline.atomic import move_into_place

USER_AGENT = "mexgan-repro-downloader/1.0 (+urllib)"


class DownloadError(RuntimeError):
    """A download that did not produce a verified file (one-line message)."""


class InterruptedDownload(DownloadError):
    """The transfer stopped early; the part file is kept and the next call resumes it."""


#---------------------------------------------------------------------------------------------
# The HTTP client


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_range(header):
    """'bytes START-END/TOTAL' -> (START, TOTAL or None); 'bytes */TOTAL' -> (None, TOTAL)."""
    match = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", header or "")
    if not match:
        return None, None
    start = None if match.group(1) == "*" else int(match.group(1))
    total = None if match.group(2) == "*" else int(match.group(2))
    return start, total


def _verify(url, path, size, sha256, remove=True):
    """Check a finished file. With ``remove``, a wrong checksum or an oversized file is deleted
    (a short one is kept for resuming); without it (a file from an earlier run) nothing is."""
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        removed = remove and actual_size > size
        if removed:
            os.remove(path)
        raise DownloadError(f"{url}: {path} has {actual_size} bytes, expected {size}"
                            + (" (removed)" if removed else ""))
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            if remove:
                os.remove(path)
            raise DownloadError(f"{url}: sha256 mismatch, expected {sha256.lower()}, got {actual}"
                                + (" (part file removed)" if remove else
                                   f" for existing {path} (delete it to download again)"))


def _fetch_once(url, part, size, chunk, opener, allow_html, progress):
    """One HTTP request appending to ``part``; returns once the whole body is there, raises
    InterruptedDownload when it is not."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    if size is not None and offset > size:
        os.remove(part)
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    open_url = opener.open if opener is not None else urllib.request.urlopen
    try:
        response = open_url(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Nothing left after `offset`: either the part is complete or it is stale.
            _, total = _content_range(err.headers.get("Content-Range"))
            if total == offset:
                return
            os.remove(part)
            raise DownloadError(f"{url}: server refused to resume at byte {offset} "
                                f"(HTTP 416); part file removed, run again") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None

    with response:
        content_type = response.headers.get("Content-Type", "")
        if not allow_html and content_type.startswith("text/html"):
            raise DownloadError(f"{url}: server sent an HTML page instead of the file "
                                f"(login required, or the file has moved)")
        status = response.status
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(f"{url}: server resumed at byte {start}, asked for {offset}")
            mode = "ab"
        else:
            # 200: the server ignored the Range header (or none was sent): start over.
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url}: server reports {total} bytes, expected {size}")
        expected_total = size if size is not None else total

        received = offset
        with open(part, mode) as out, tqdm(total=expected_total, initial=offset, unit="B",
                                           unit_scale=True, unit_divisor=1024,
                                           desc=os.path.basename(part)[:-5],
                                           disable=not progress, leave=False) as bar:
            try:
                while True:
                    block = response.read(chunk)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, HTTPException) as err:
                out.flush()
                raise InterruptedDownload(f"{url}: connection lost after {received} bytes "
                                          f"({type(err).__name__}); run again to resume"
                                          ) from None
            out.flush()
    if expected_total is not None and received < expected_total:
        raise InterruptedDownload(f"{url}: connection closed after {received} of "
                                  f"{expected_total} bytes; run again to resume")


def download(url: str, dest: str, sha256: str | None = None, size: int | None = None,
             chunk: int = 1 << 20, *, retries: int = 0, opener=None, allow_html: bool = False,
             progress: bool = True) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return ``dest``.

    ``size``/``sha256`` are checked when given. A checksum mismatch removes the part file and
    raises ``DownloadError`` naming the url and both digests; ``dest`` is created only after every
    check passed (fsync, then atomic rename). An interrupted transfer keeps the part file, so the
    next call resumes it with ``Range``; ``retries`` re-tries that many times within this call. A
    server that ignores ``Range`` (HTTP 200) restarts the file from byte 0. ``opener`` is an
    ``urllib`` opener (for cookies); HTML answers are refused unless ``allow_html``.
    """
    if os.path.exists(dest):
        # A finished file from an earlier run: check it, never overwrite it.
        _verify(url, dest, size, sha256, remove=False)
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, size, chunk, opener, allow_html, progress)
            break
        except InterruptedDownload as err:
            if attempt == retries:
                raise
            print(f"{err}; retrying ({attempt + 1}/{retries})", file=sys.stderr)
    _verify(url, part, size, sha256)
    move_into_place(part, dest)
    return dest


def fetch_sources(sources, raw_dir: str, retries: int) -> None:
    """Download each of a dataset's public ``sources`` (pipeline.data.sets.base.Source) to its
    path under ``raw_dir``, printing where each goes."""
    for source in sources:
        dest = os.path.join(raw_dir, source.path)
        print(f"{source.url} -> {dest} ({source.note})")
        download(source.url, dest, sha256=source.sha256, size=source.size, retries=retries)

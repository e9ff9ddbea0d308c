"""Fetching the raw datasets: a resumable, verifying HTTP client and the list of public sources.

``download`` writes into ``dest + ".part"``, resumes it with an HTTP Range request, checks the size
and sha256 when they are known, and only then fsyncs and renames the part file to ``dest``: a file
at ``dest`` is always complete. ``fetch_dataset`` downloads what is public (NYU, CMP Facade),
checks that the zip archives in the raw folder open, and for Cityscapes and Helen says which
file to put where (Cityscapes can also be fetched with a login, see ``cityscapes_login``). It
never extracts: the raw folder holds what `dvc add` registered (`data.dvc`), and the prepare
stage extracts into its own output folder (artifacts/raw/<dataset>).

Expected sizes and sha256 digests of the public files could not be checked offline, so they are
``None`` in ``SOURCES``: those downloads are verified only against the server's Content-Length.
Fill them in once a known-good copy exists.
"""
from __future__ import annotations

import hashlib
import http.cookiejar
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
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


#---------------------------------------------------------------------------------------------
# Public sources


@dataclass(frozen=True)
class Source:
    """One downloadable raw file: where it comes from and where it goes under the raw folder."""
    url: str
    path: str                   # relative to the raw folder
    size: int | None = None     # bytes, None where not known offline
    sha256: str | None = None   # None where not known offline
    note: str = ""


SOURCES = {
    "nyu": [
        Source("http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
               "nyu_depth_v2_labeled.mat",
               note="NYU Depth v2 labeled set, 1449 frames, ~2.8 GB MATLAB v7.3 (HDF5); size and "
                    "sha256 unknown offline"),
    ],
    "facade": [
        Source("https://cmp.felk.cvut.cz/~tylecr1/facade/CMP_facade_DB_base.zip",
               "facade/CMP_facade_DB_base.zip",
               note="CMP Facade base set (378 images); size and sha256 unknown offline"),
        Source("https://cmp.felk.cvut.cz/~tylecr1/facade/CMP_facade_DB_extended.zip",
               "facade/CMP_facade_DB_extended.zip",
               note="CMP Facade extended set (228 images); size and sha256 unknown offline"),
    ],
}

CITYSCAPES_SITE = "https://www.cityscapes-dataset.com/"
CITYSCAPES_LOGIN_URL = "https://www.cityscapes-dataset.com/login/"
CITYSCAPES_PACKAGE_URL = "https://www.cityscapes-dataset.com/file-handling/?packageID={}"
# Package ids of the site's file-handling endpoint.
CITYSCAPES_PACKAGES = {"gtFine_trainvaltest.zip": 1, "leftImg8bit_trainvaltest.zip": 3}
HELEN_URL = "https://github.com/JPlin/Relabeled-HELEN-Dataset"


def cityscapes_login(username: str, password: str, login_url: str = CITYSCAPES_LOGIN_URL):
    """Log in to the Cityscapes site's form and return an urllib opener holding the session
    cookie. Raises DownloadError when the site does not accept the credentials."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    form = urllib.parse.urlencode({"username": username, "password": password,
                                   "submit": "Login"}).encode()
    try:
        with opener.open(login_url, data=form, timeout=60) as response:
            page = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, HTTPException) as err:
        raise DownloadError(f"{login_url}: login failed "
                            f"({getattr(err, 'reason', err)})") from None
    # A rejected login shows the form again (a password field); an accepted one does not.
    if not any(jar) or re.search(r'name=["\']password["\']', page):
        raise DownloadError(f"{login_url}: the site did not accept the login for "
                            f"{username!r} (check CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD)")
    return opener


#---------------------------------------------------------------------------------------------
# Per-dataset fetch


def _cityscapes_instructions(raw_dir: str) -> str:
    return (f"Cityscapes needs a login at {CITYSCAPES_SITE}: download gtFine_trainvaltest.zip "
            f"(package {CITYSCAPES_PACKAGES['gtFine_trainvaltest.zip']}, 241 MB) and "
            f"leftImg8bit_trainvaltest.zip (package "
            f"{CITYSCAPES_PACKAGES['leftImg8bit_trainvaltest.zip']}, 11 GB) and put both in "
            f"{os.path.abspath(raw_dir)}/ (or extract them there as gtFine/ and leftImg8bit/), "
            f"or set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD and run this again")


def _helen_instructions(raw_dir: str) -> str:
    return (f"Helen (relabeled) is not downloadable here: get helenstar_release.7z from "
            f"{HELEN_URL} (its README links the archive), extract it so that "
            f"{os.path.abspath(raw_dir)}/helenstar_release/train/ and .../test/ hold the "
            f"*_image.jpg and *_label.png files (7z x helenstar_release.7z -o{raw_dir}), or put "
            f"a helenstar_release.zip in {os.path.abspath(raw_dir)}/")


def _fetch_cityscapes(raw_dir: str, retries: int) -> None:
    from pipeline.data.raw_cityscapes import cityscapes_present  # lazy: avoids an import cycle
    if cityscapes_present(raw_dir):
        return
    missing = [name for name in CITYSCAPES_PACKAGES
               if not os.path.exists(os.path.join(raw_dir, name))]
    username = os.environ.get("CITYSCAPES_USERNAME")
    password = os.environ.get("CITYSCAPES_PASSWORD")
    if missing and username and password:
        opener = cityscapes_login(username, password, CITYSCAPES_LOGIN_URL)
        for name in missing:
            download(CITYSCAPES_PACKAGE_URL.format(CITYSCAPES_PACKAGES[name]),
                     os.path.join(raw_dir, name), opener=opener, retries=retries)
        missing = []
    if missing:
        from pipeline.data.raw_files import missing_raw_data
        print(_cityscapes_instructions(raw_dir))
        raise missing_raw_data("cityscapes", raw_dir, missing)


def _fetch_helen(raw_dir: str) -> None:
    from pipeline.data.raw_files import HELEN_ZIP, missing_raw_data
    from pipeline.data.raw_helen import helen_present
    if not helen_present(raw_dir) and not os.path.isfile(os.path.join(raw_dir, HELEN_ZIP)):
        print(_helen_instructions(raw_dir))
        raise missing_raw_data("helen", raw_dir, [HELEN_ZIP])


def fetch_dataset(dataset: str, raw_dir: str, *, retries: int = 5) -> None:
    """Make ``raw_dir`` hold ``dataset``'s raw files: download the public ones, extract
    archives that are already there, and for Cityscapes/Helen print which file goes where
    (raising FileNotFoundError) when they are not."""
    from pipeline.data.raw_facade import facade_present
    from pipeline.data.raw_nyu import nyu_present
    os.makedirs(raw_dir, exist_ok=True)
    if dataset == "cityscapes":
        _fetch_cityscapes(raw_dir, retries)
    elif dataset == "helen":
        _fetch_helen(raw_dir)
    elif dataset == "nyu" and nyu_present(raw_dir):
        pass
    elif dataset == "facade" and facade_present(raw_dir):
        pass
    elif dataset in SOURCES:
        for source in SOURCES[dataset]:
            dest = os.path.join(raw_dir, source.path)
            print(f"{source.url} -> {dest} ({source.note})")
            download(source.url, dest, sha256=source.sha256, size=source.size,
                     retries=retries)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: cityscapes, nyu, helen, facade")
    check_archives(dataset, raw_dir)


def check_archives(dataset: str, raw_dir: str) -> None:
    """Every zip archive of `dataset` in the raw folder opens (its central directory reads):
    a junk or truncated download fails here, naming the file, not at prepare time. Reads only."""
    import zipfile
    from pipeline.data.raw_files import CITYSCAPES_ZIPS, FACADE_ZIPS
    names = {"cityscapes": list(CITYSCAPES_ZIPS.values()),
             "helen": ["helenstar_release.zip"],
             "facade": [os.path.join(folder, name) for name in FACADE_ZIPS.values()
                        for folder in ("", "facade")]}.get(dataset, [])
    for name in names:
        path = os.path.join(raw_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt or truncated zip archive ({err})") from None

"""The real samples in ../shared/data (data/SOURCES.md there) that some tests read.

CI always has them: a test that needs one and does not find it fails, naming the path, instead
of skipping silently. MEXGAN_SHARED_DATA=DIR points at another copy."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MEXGAN_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def shared_path(*parts: str) -> str:
    """The path of a shared sample; fails the calling test when it is missing."""
    path = os.path.normpath(os.path.join(SHARED, *parts))
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: this test reads the real samples of ../shared/data (CI "
                    f"always has them; MEXGAN_SHARED_DATA=DIR points at another copy)",
                    pytrace=False)
    return path

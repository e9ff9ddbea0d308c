"""Shared test settings.

The test process goes through the same CPU set-up as every stage (pipeline.training.platform): portable
mode from the repository's params.yaml (`train.portable`, MEXGAN_PORTABLE=0/1 overrides). It has
to run before torch or numpy is imported, so it comes first here. The thread count is 1, not
train.cpu_threads: the tiny CPU networks of the tests are fastest on one thread, and with more
threads a pipeline run on the same cores (dvc repro) makes them spin-wait and run several times
slower. Subprocesses that run stages configure themselves from their own params file.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # pytest started from another folder
    sys.path.insert(0, ROOT)

from pipeline.training import platform  # noqa: E402
TEST_THREADS = 1

if not platform.is_configured():
    _portable, _threads, _source = platform.settings_from_argv(
        ["--params", os.path.join(ROOT, "params.yaml")])
    platform.configure(_portable, TEST_THREADS, _source)

import torch  # noqa: E402 - after platform.configure, on purpose

torch.set_num_threads(TEST_THREADS)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _test_threads():
    """Each test ends on TEST_THREADS threads: code that pins the count from a params file
    (trainer.make_deterministic with train.cpu_threads, e.g. the benchmark on params.yaml)
    would otherwise leave it for every later test of the session."""
    yield
    if torch.get_num_threads() != TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory) -> str:
    """One VGG19 weights file (tiny_project.make_vgg_weights) for the whole session, outside
    every test project: built once, and no project's git or DVC hashes its 80 MB."""
    from tests.tiny_project import make_vgg_weights
    path = str(tmp_path_factory.mktemp("vgg") / "vgg19.pth")
    make_vgg_weights(path)
    return path


E2E_MODULE, E2E_TEST = "test_pipeline_e2e.py", "test_dvc_repro_runs_every_stage_and_writes_the_reports"


def _is_e2e_test(item) -> bool:
    return item.path.name == E2E_MODULE and item.name == E2E_TEST


def pytest_collection_modifyitems(items):
    """The fast end-to-end test runs last: its first `dvc repro`, started with the session
    (e2e_repro), has then run beside all the other tests."""
    e2e = [item for item in items if _is_e2e_test(item)]
    items[:] = [item for item in items if not _is_e2e_test(item)] + e2e


@pytest.fixture(scope="session", autouse=True)
def e2e_repro(request, tmp_path_factory):
    """When the fast end-to-end test is selected: its project, and its first `dvc repro`
    started now in the background (test_pipeline_e2e.BackgroundRepro). The stages run one at a
    time on one thread, the tests on one thread: on two cores they run side by side, and the
    suite takes about the time of the other tests instead of their sum. None otherwise."""
    e2e = next((item for item in request.session.items if _is_e2e_test(item)), None)
    if e2e is None:
        yield None
        return
    job = e2e.module.BackgroundRepro(tmp_path_factory.mktemp("e2e"),
                                     request.getfixturevalue("vgg_weights"))
    try:
        yield job
    finally:
        job.stop()

"""Shared test settings.

The test process goes through the same CPU set-up as every stage (pipeline.platform): portable
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

from pipeline import platform  # noqa: E402
TEST_THREADS = 1

if not platform.is_configured():
    _portable, _threads, _source = platform.settings_from_argv(
        ["--params", os.path.join(ROOT, "params.yaml")])
    platform.configure(_portable, TEST_THREADS, _source)

import torch  # noqa: E402 - after platform.configure, on purpose

torch.set_num_threads(TEST_THREADS)

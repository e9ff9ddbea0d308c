"""A tiny project for the HuEv study and the editor page, made in seconds without training:
synthetic Cityscapes at 32x16 prepared by the real prepare code, untrained (random-weight)
generators of the two study rows and a G_I saved in the pipeline's model-file layout (with the
metadata pipeline.apps.editing checks), and the evaluate stage's per-box results of both rows
written by the real evaluation code (score_edits, save_results); and `Server`, a real
`python -m stages.serve` process on it."""
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import torch

from pipeline.config.loading import load_params
from pipeline.training.checkpoints import save_atomic
from pipeline.evaluation.evaluation import (RESULTS_SUBDIR, edited_maps, save_results, score_edits,
                                            test_items)
from pipeline.data.inputs import condition_channels
from pipeline.models.networks import GlobalGenerator
from pipeline.data.preparation import prepare_dataset
from pipeline.models.model_files import model_metadata
from pipeline.data.synthetic import generate_split
from tests.tiny_project import REPO, tiny_params, write_params

ROWS = ("pix2pixhd-cityscapes", "mexgan-cityscapes")


def _save_model(path, generator, in_channels, params, kind, dataset, width, height, name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    m = params.model
    save_atomic({"generator": generator.state_dict(), "in_channels": in_channels,
                 "model": {"ngf": m.ngf, "n_downsampling": m.n_downsampling,
                           "n_blocks": m.n_blocks},
                 "twosm": None,
                 "meta": model_metadata(kind, dataset, width, height, name, in_channels,
                                        "test", commit="test")}, path)


def make_project(root, test_images: int = 16) -> SimpleNamespace:
    """Write the tiny project under `root`; returns its paths and params."""
    raw = tiny_params()
    raw["datasets"]["cityscapes"].update(synthetic_train=2, synthetic_test=test_images)
    params_path = write_params(os.path.join(root, "params.yaml"), raw)
    params = load_params(params_path)
    d = params.datasets["cityscapes"]
    data_dir = os.path.join(root, "artifacts", "data", "cityscapes")
    splits = {split: generate_split("cityscapes", split, count, d.height, d.width,
                                    params.data.seed)
              for split, count in (("train", 2), ("test", test_images))}
    prepare_dataset("cityscapes", splits, data_dir, width=d.width, height=d.height,
                    threshold=d.size_threshold, box_rule=params.data.box_rule,
                    seed=params.evaluate.seed, source="synthetic")
    spec, split, items = test_items("cityscapes", data_dir)
    models = os.path.join(root, "artifacts", "models")
    channels = condition_channels(spec)
    results = os.path.join(root, "artifacts", "eval", RESULTS_SUBDIR)
    m = params.model
    for k, row in enumerate(ROWS):
        torch.manual_seed(k)
        generator = GlobalGenerator(channels, 3, m.ngf, m.n_downsampling, m.n_blocks).eval()
        _save_model(os.path.join(models, row, "seed0", "generator.pt"), generator, channels,
                    params, "structure", "cityscapes", d.width, d.height, row)
        _, _, fused = score_edits(edited_maps, generator, split, spec, items)
        save_results(results, row, SimpleNamespace(spec=spec, split=split, items=items), fused)
    torch.manual_seed(9)
    translator = GlobalGenerator(3, 3, m.ngf, m.n_downsampling, m.n_blocks).eval()
    _save_model(os.path.join(models, "translator-cityscapes", "generator.pt"), translator, 3,
                params, "translator", "cityscapes", d.width, d.height, "translator-cityscapes")
    return SimpleNamespace(root=str(root), params_path=params_path, params=params,
                           results=results, data_root=os.path.join(root, "artifacts", "data"),
                           items=len(items) - params.evaluate.grid_images,  # served (huev)
                           spec=spec)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m stages.serve` in a project folder, on a free localhost port; `extra`: more
    arguments (["--editor"] for the editor). A study gets --unblinded-ok: the tiny project's
    (and the demo's) rows have the public seed, which the server otherwise refuses."""

    def __init__(self, root: str, database: str, extra=()):
        extra = list(extra) if "--editor" in extra else ["--unblinded-ok", *extra]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stages.serve", "--port", str(self.port), "--database",
             database, *extra], cwd=root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("server did not start within 60 s")

    def rss_mb(self) -> float:
        """The server process's resident memory (VmRSS), MB."""
        with open(f"/proc/{self.process.pid}/status") as f:
            line = next(line for line in f if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def crash(self):
        """SIGKILL: no shutdown code runs (no SQLite checkpoint, no close)."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

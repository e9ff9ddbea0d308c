"""tools/release_model.py: a release is checked for size before anything is written, and writes
the fp16 generator, its G_I and the provenance file."""
import json
import os
import shutil
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import release_model  # noqa: E402

RELEASED = os.path.join(REPO, "models")


@pytest.fixture
def run_folder(tmp_path):
    """A training run's model folder made from the released model (its file has the
    generator and meta a run's file has) and a train_summary.json."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(os.path.join(RELEASED, "mexgan-cityscapes", "seed0", "generator.pt"), run)
    with open(os.path.join(RELEASED, "mexgan-cityscapes.json")) as f:
        provenance = json.load(f)
    (run / "train_summary.json").write_text(json.dumps({
        "seed": 2, "steps": 1234, "epochs": 5, "profile": provenance["profile"],
        "vgg_source": "DROPPED"}))
    return str(run)


def test_a_release_writes_fp16_weights_and_its_provenance(run_folder, tmp_path):
    out = str(tmp_path / "out")
    provenance = release_model.release(run_folder,
                                       os.path.join(RELEASED, "translator-cityscapes"),
                                       os.path.join(REPO, "reports", "study"), out, "abc123")
    assert provenance["seed"] == 2 and provenance["steps"] == 1234
    assert provenance["trained_at_commit"] == "abc123"
    state = torch.load(os.path.join(out, "mexgan-cityscapes", "seed2", "generator.pt"),
                       weights_only=False)
    assert all(v.dtype == torch.float16 for v in state["generator"].values()
               if torch.is_floating_point(v))
    assert os.path.isfile(os.path.join(out, "translator-cityscapes", "generator.pt"))
    with open(os.path.join(out, "mexgan-cityscapes.json")) as f:
        assert json.load(f)["study_test_scores_all_seeds"]["tiou"]["mean"] > 0


def test_an_oversized_release_writes_nothing(run_folder, tmp_path, monkeypatch):
    # the generator (written first) fits the limit; G_I, padded by 1 MB, does not
    limit = os.path.getsize(os.path.join(RELEASED, "mexgan-cityscapes", "seed0",
                                         "generator.pt")) + 200_000
    half_weights = release_model.half_weights

    def padded(state):
        result = half_weights(state)
        if "release" not in state or state["release"].get("row", "").startswith("translator"):
            result = {**result, "padding": torch.zeros(1_000_000, dtype=torch.uint8)}
        return result

    monkeypatch.setattr(release_model, "MAX_BYTES", limit)
    monkeypatch.setattr(release_model, "half_weights", padded)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"translator-cityscapes/generator.pt: .* more than "
                                         f"the {limit} a release may have"):
        release_model.release(run_folder, os.path.join(RELEASED, "translator-cityscapes"),
                              os.path.join(REPO, "reports", "study"), str(out))
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))

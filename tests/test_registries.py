"""The registries a row's knowledge lives in: pipeline.config.losses.LOSSES (loss name -> class
name), pipeline.config.sections.ROW_SECTIONS (a row section's schema, losses and stage) and
the row kinds (pipeline.kinds), which declare their sections, how they draw a box and how they
score, and the report's paper rows, found by their params. Each test fails when one of them
declares the wrong thing: a loss no class implements, a kind that builds another class than
the one its loss names, a section no kind trains, a kind that draws its boxes another kind's
way, a renamed row that loses its comparisons."""
import numpy as np
import pytest
import torch.nn as nn
import yaml

from pipeline import kinds
from pipeline.config.sections import MAP_ROW_SECTIONS, ROW_SECTIONS, Row
from pipeline.config.validation import parse_params
from pipeline.data.datasets import read_split
from pipeline.data.inputs import EditBox
from pipeline.kinds import parts
from pipeline.kinds.inpainting import build_gl
from pipeline.kinds.parts import loss_class
from pipeline.config.losses import LOSSES, expands
from pipeline.models.losses import ExpansionLoss
from pipeline.models.model_files import CONDITIONING, model_metadata
from tiny_project import REPO, prepare_tiny_cityscapes, tiny_params


class FakeVGG(nn.Module):
    """No 80 MB network: the registry tests only look at which plug-ins a row builds."""
    pretrained, source = False, "fake"

    def __init__(self, weights_path="", vgg_input="imagenet"):
        super().__init__()


@pytest.fixture
def params(monkeypatch):
    monkeypatch.setattr(parts, "VGG19Features", FakeVGG)
    return parse_params(tiny_params())


def test_every_section_loss_is_a_registered_loss():
    for name, section in ROW_SECTIONS.items():
        missing = set(section.losses) - set(LOSSES)
        assert not missing, f"{name} allows {missing}, which LOSSES does not hold"


def test_a_loss_is_an_expansion_loss_exactly_when_its_class_is_an_expansion_term():
    for name, loss in LOSSES.items():
        assert loss.expansion == issubclass(loss_class(name), ExpansionLoss), name


def test_reading_params_imports_no_network():
    """Config validation reads LOSSES by name: the light stages (prepare, row_expansion) load
    params without torch, and their code deps hold no network module."""
    import subprocess
    import sys
    code = ("import sys, pipeline.config.loading; "
            "assert 'torch' not in sys.modules, 'config imports torch'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_every_row_section_is_trained_by_exactly_one_kind_and_has_a_stage():
    owners = [section for kind in kinds.ROW_KINDS for section in kind.sections]
    assert sorted(owners) == sorted(ROW_SECTIONS)
    with open(f"{REPO}/dvc.yaml") as f:
        stages = yaml.safe_load(f)["stages"]
    assert {section.stage for section in ROW_SECTIONS.values()} <= set(stages)


def _row_plugins(params, kind, loss) -> list:
    """The loss plug-ins a row of `kind` with loss `loss` trains with."""
    if kind.name == kinds.INPAINTING.name:
        return build_gl(loss, params, 22, 24)[1]
    row = Row(dataset="cityscapes", loss=loss, q_from="q" if expands(loss) else "",
              observation="local" if ROW_SECTIONS[kind.sections[0]].observations else "")
    return kind.networks(params, row)[1]


@pytest.mark.parametrize("kind", kinds.ROW_KINDS, ids=lambda kind: kind.name)
def test_a_kind_builds_the_class_its_loss_names(params, kind):
    for loss in kind.losses:
        built = _row_plugins(params, kind, loss)
        assert any(type(plugin) is loss_class(loss) for plugin in built), \
            f"{kind.name} row with loss {loss}: {[type(p).__name__ for p in built]}"


def test_a_row_has_a_q_exactly_when_its_loss_expands(params):
    for name, row in params.rows.items():
        assert (params.q_of(row) is not None) == expands(row.loss), name


def test_every_kind_names_its_model_conditioning():
    assert set(kinds.KINDS) == set(CONDITIONING)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    folder = prepare_tiny_cityscapes(tiny_params(), str(tmp_path_factory.mktemp("registries")))
    return read_split(f"{folder}/test.h5")


@pytest.mark.parametrize("kind", [k for k in kinds.ROW_KINDS if k.edits_maps],
                         ids=lambda kind: kind.name)
def test_a_map_kind_draws_and_edits_the_boxes_of_its_own_generator(params, kind, tiny_split):
    """Its edited_maps (evaluation) and edit_box (the editor) run on the generator it builds:
    another kind's way of drawing fails on it (a colour decode of label streams, or streams
    asked of a colour generator)."""
    from pipeline.data.sets import get_spec
    spec = get_spec("cityscapes")
    loss = kind.losses[0]
    row = Row(dataset="cityscapes", loss=loss, q_from="q" if expands(loss) else "",
              observation="full" if ROW_SECTIONS[kind.sections[0]].observations else "")
    generator = kind.networks(params, row)[0].eval()
    height, width = tiny_split.labels.shape[1:]
    box, target = (4, 2, 14, 10), spec.edit_classes[0]
    items = [(0, EditBox("a", target, box))]
    edited, = kind.edited_maps(generator, tiny_split, spec, items)
    assert edited.labels.shape == (height, width)
    generator.meta = model_metadata(kind.name, "cityscapes", width, height, "r",
                                    spec.num_labels + 2, "", commit="test")
    labels = tiny_split.labels[0].astype(np.int64)
    drawn = kind.edit_box(generator, labels, labels.copy(), box, target, "cpu")
    assert drawn.shape == (box[3] - box[1], box[2] - box[0])


def test_the_map_row_sections_are_the_sections_of_map_kinds():
    assert set(MAP_ROW_SECTIONS) == {section for kind in kinds.ROW_KINDS if kind.edits_maps
                                     for section in kind.sections}


def test_the_report_finds_the_papers_rows_by_their_params_not_their_names():
    from pipeline.evaluation.reports.differences import comparisons
    from pipeline.evaluation.reports.paper_rows import MEXGAN, row_of
    from pipeline.evaluation.reports.study_questions import study_rows
    raw = tiny_params()
    raw["mex_rows"] = {("mine" if name == "mexgan-cityscapes" else name): row
                       for name, row in raw["mex_rows"].items()}
    params = parse_params(raw)
    assert row_of(params, MEXGAN, "cityscapes") == "mine"   # not a q-sweep row
    pairs = comparisons(params, ["mine", "pix2pixhd-cityscapes", "amexgan-cityscapes"],
                        ["cityscapes"])
    assert pairs == [("mine", "pix2pixhd-cityscapes", "cityscapes"),
                     ("amexgan-cityscapes", "mine", "cityscapes")]
    table1 = parse_params({**raw, "twosm_rows": {}})   # a study of Table 1's rows
    assert study_rows(table1, "cityscapes").steps[0] == ("mine", "pix2pixhd-cityscapes",
                                                         "MExGAN", "Pix2PixHD")
    raw["mex_rows"]["mine-too"] = raw["mex_rows"]["mine"]
    with pytest.raises(ValueError, match="one row per role"):
        row_of(parse_params(raw), MEXGAN, "cityscapes")


def test_every_row_kind_is_scored_by_an_evaluate_stage():
    from stages.evaluate import OUTPUTS
    assert all(kind.table in OUTPUTS for kind in kinds.ROW_KINDS)
    assert set(kinds.TABLES) == set(OUTPUTS)

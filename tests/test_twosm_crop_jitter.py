"""TwoSM's local-window training jitter (params twosm.crop_jitter, issue 34): `within` (the
simplified build: anywhere that still holds the box, about ±1/2 of the box's longer side) or
`quarter` (the hong build: Hong et al.'s crop_box_with_margin, the centred window moved by up to
±1/4 of the box's longer side). Windows written out by hand for one box of a 64x32 map."""
import pytest

from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.kinds import TWOSM
from pipeline.models.twosm_views import Observation, local_window
from tiny_project import tiny_params

# box 4 wide, 8 high: longer side 8, window 16x16; centred window left (20+24-16)/2 = 14,
# top (8+16-16)/2 = 4; the window stays in [8, 20] x [0, 8] to hold the box and the map
BOX, WIDTH, HEIGHT = (20, 8, 24, 16), 64, 32


@pytest.mark.parametrize("offset, within, quarter", [
    (None, (14, 4), (14, 4)),              # test time: centred, both
    ((0.5, 0.5), (14, 4), (14, 4)),        # the middle of the draw
    ((0.0, 0.0), (8, 0), (12, 2)),         # within: to the limit (−6, −4); quarter: −8/4 = −2
    ((1.0, 1.0), (20, 8), (16, 6)),        # within: +6, +4; quarter: +2
    ((0.25, 1.0), (11, 8), (13, 6)),       # quarter: (2·0.25 − 1)·2 = −1
])
def test_the_window_moves_by_at_most_a_quarter_of_the_longer_side_under_quarter(
        offset, within, quarter):
    for jitter, (left, top) in (("within", within), ("quarter", quarter)):
        assert local_window(BOX, WIDTH, HEIGHT, offset, jitter) == \
            (left, top, left + 16, top + 16), jitter


def test_quarter_still_clamps_to_the_map():
    # box at the map's left edge: the centred window would start at −4; clamped to 0
    assert local_window((0, 8, 8, 16), WIDTH, HEIGHT, (0.0, 0.5), "quarter")[0] == 0


def test_the_builds_set_the_jitter_and_a_section_value_wins():
    assert parse_params(tiny_params()).twosm.crop_jitter == "within"   # params.yaml: simplified
    assert parse_params(tiny_params(twosm={"build": "hong"})).twosm.crop_jitter == "quarter"
    mixed = parse_params(tiny_params(twosm={"build": "hong", "crop_jitter": "within"}))
    assert mixed.twosm.crop_jitter == "within"
    with pytest.raises(ParamsError, match=r"^twosm\.crop_jitter: ") as error:
        parse_params(tiny_params(twosm={"crop_jitter": "half"}))
    assert "\n" not in str(error.value)


def test_a_twosm_row_trains_with_its_builds_jitter():
    params = parse_params(tiny_params(twosm={"build": "hong", "crop_size": 16}))
    generator, _ = TWOSM.networks(params, params.twosm_rows["twosm-cityscapes"])
    assert generator.observation.crop_jitter == "quarter"
    assert Observation("local", 16).crop_jitter == "within"
    with pytest.raises(ValueError, match="crop jitter 'half'"):
        Observation("local", 16, crop_jitter="half")

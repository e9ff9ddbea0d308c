"""The editor's exact palette lookup of a colour map
(pipeline.apps.editing_maps.colour_map_to_ids), done a block of rows at a time: the same ids
and the same error, whatever the block size."""
import numpy as np
import pytest

from pipeline.apps import editing_maps
from pipeline.apps.editing import EditError, id_dtype
from pipeline.data.sets import SPECS

PALETTE = SPECS["cityscapes"].palette


@pytest.mark.parametrize("rows", [3, 4, 256])
def test_lookup_by_blocks_of_rows_gives_the_ids(monkeypatch, rows):
    monkeypatch.setattr(editing_maps, "CODE_ROWS", rows)
    ids = np.random.default_rng(5).integers(0, len(PALETTE), size=(10, 7))
    found = editing_maps.colour_map_to_ids(PALETTE[ids], PALETTE, "map.png", "cityscapes")
    # the smallest id type that also holds the instance ids an edit writes (issue 32: memory)
    assert found.dtype == id_dtype(len(PALETTE)) == np.uint16
    assert np.array_equal(found, ids)


@pytest.mark.parametrize("rows", [3, 256])
def test_an_off_palette_pixel_in_a_later_block_is_named_with_its_position(monkeypatch, rows):
    monkeypatch.setattr(editing_maps, "CODE_ROWS", rows)
    colour = PALETTE[np.zeros((10, 7), dtype=int)].copy()
    colour[7, 2] = (1, 2, 3)
    colour[9, 6] = (1, 2, 4)
    with pytest.raises(EditError,
                       match=r"map\.png: 2 pixels have colours outside the cityscapes palette "
                             r"\(first \(1, 2, 3\) at x=2, y=7\)"):
        editing_maps.colour_map_to_ids(colour, PALETTE, "map.png", "cityscapes")

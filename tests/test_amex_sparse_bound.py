"""tools/amex_sparse_bound.py: which positions of a zero-background map a sparse evaluation of
the PatchGAN must still compute, on hand-checked cases."""
import numpy as np

from tools.amex_sparse_bound import reached_positions, unskippable_share


def test_one_active_pixel_reaches_the_outputs_whose_window_holds_it():
    active = np.zeros((8, 8), bool)
    active[4, 5] = True
    # stride 1, kernel 4, padding 2: output i reads inputs i-2..i+1, so input 4 -> outputs 3..6
    reached = reached_positions(active, 1, padding_differs=False)
    assert reached.shape == (9, 9)
    rows, columns = np.nonzero(reached)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (3, 6, 4, 7)
    # stride 2: output i reads inputs 2i-2..2i+1 -> input 4 in outputs 2, 3; input 5 in 2, 3
    rows, columns = np.nonzero(reached_positions(active, 2, padding_differs=False))
    assert sorted(set(rows)) == [2, 3] and sorted(set(columns)) == [2, 3]


def test_padding_that_differs_from_the_background_reaches_the_border_outputs():
    reached = reached_positions(np.zeros((8, 8), bool), 1, padding_differs=True)
    # output i reads inputs i-2..i+1: the padding (rows -2, -1, 8, 9) reaches 0, 1, 7, 8
    assert reached[:, 4].tolist() == [True, True, False, False, False, False, False, True, True]
    assert not reached[2:7, 2:7].any()


def test_whole_map_box_leaves_nothing_to_skip_and_the_share_weights_layers_by_macs():
    share, per_layer = unskippable_share((0, 0, 8, 8), 8, 8, [(3, 2), (5, 1)])
    assert share == 1.0 and per_layer == [1.0, 1.0]
    # a 1-px box in the corner: layer 1 (stride 2, 5x5 out) reaches outputs 0..1 x 0..1
    # (4 of 25); layer 2 (stride 1, 6x6 out) then reads them or the padding
    share, per_layer = unskippable_share((0, 0, 1, 1), 8, 8, [(3, 2), (5, 1)])
    assert per_layer[0] == 4 / 25
    second = reached_positions(reached_positions(
        np.pad(np.ones((1, 1), bool), ((0, 7), (0, 7))), 2, False), 1, True)
    assert per_layer[1] == second.mean()
    assert np.isclose(share, (4 * 3 + second.sum() * 5) / (25 * 3 + 36 * 5))

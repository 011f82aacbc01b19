"""Paired crop with scale, dihedral augmentation and their errors."""
from __future__ import annotations

import numpy as np
import pytest

from basicsr.data.transforms import (align_gt_to_lq, augment, dihedral, inverse_dihedral, pad_to_patch,
                                     paired_random_crop)


def _coords(h, w):
    """Image whose pixels store their own (row, col), to check where crops come from."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows, cols, np.zeros_like(rows)], axis=2).astype(np.float32)


@pytest.mark.parametrize('scale', [1, 2, 4])
def test_crop_keeps_lq_and_gt_aligned(scale):
    gt = _coords(40 * scale, 48 * scale)
    lq = gt[::scale, ::scale]
    for seed in range(5):
        g, l_ = paired_random_crop(gt, lq, 16 * scale, scale, 'gt.png', np.random.default_rng(seed))
        assert g.shape == (16 * scale, 16 * scale, 3) and l_.shape == (16, 16, 3)
        np.testing.assert_array_equal(g[::scale, ::scale], l_)


def test_crop_is_a_function_of_the_generator():
    gt = _coords(50, 60)
    a = paired_random_crop(gt, gt, 16, 1, 'x', np.random.default_rng(7))[0]
    b = paired_random_crop(gt, gt, 16, 1, 'x', np.random.default_rng(7))[0]
    np.testing.assert_array_equal(a, b)


def test_crop_lists_share_one_position():
    gt = _coords(30, 30)
    gts, lqs = paired_random_crop([gt, gt + 1], [gt, gt * 2], 8, 1, 'x', np.random.default_rng(0))
    np.testing.assert_array_equal(gts[0] + 1, gts[1])
    np.testing.assert_array_equal(lqs[0] * 2, lqs[1])


def test_crop_scale_mismatch_names_files_and_sizes():
    with pytest.raises(ValueError, match=r"GT 'a_gt.png' is 40x40.*LQ 'a_lq.png' is 19x20.*must be 38x40"):
        paired_random_crop(_coords(40, 40), _coords(19, 20), 16, 2, 'a_gt.png', np.random.default_rng(0), 'a_lq.png')


def test_crop_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match=r"'small.png' is 20x30.*gt_size=32"):
        paired_random_crop(_coords(20, 30), _coords(20, 30), 32, 1, 'small.png', np.random.default_rng(0))


def test_patch_not_multiple_of_scale_is_an_error():
    with pytest.raises(ValueError, match='not a multiple of scale 4'):
        paired_random_crop(_coords(40, 40), _coords(10, 10), 18, 4, 'x', np.random.default_rng(0))


def test_align_crops_sr_remainder_and_rejects_real_mismatch():
    gt = _coords(101, 103)
    assert align_gt_to_lq(gt, _coords(25, 25), 4, 'g', 'l').shape == (100, 100, 3)
    with pytest.raises(ValueError, match="GT 'g' is 101x103.*LQ 'l' is 24x25"):
        align_gt_to_lq(gt, _coords(24, 25), 4, 'g', 'l')


def test_augment_reaches_all_eight_dihedral_elements_and_inverts():
    img = _coords(6, 6) + np.arange(3, dtype=np.float32)
    seen = set()
    for seed in range(200):
        out, (flip, rot) = augment(img, True, True, np.random.default_rng(seed), return_params=True)
        seen.add((flip, rot))
        np.testing.assert_array_equal(inverse_dihedral(out, flip, rot), img)
    assert len(seen) == 8


def test_augment_applies_the_same_transform_to_all_images():
    a = _coords(5, 7)
    gt, lq = augment([a, a * 3], True, True, np.random.default_rng(1))
    np.testing.assert_array_equal(gt * 3, lq)


def test_augment_disabled_is_identity():
    a = _coords(5, 7)
    for seed in range(10):
        np.testing.assert_array_equal(augment(a, False, False, np.random.default_rng(seed)), a)


def test_dihedral_rotation_is_counter_clockwise_quarter_turn():
    a = np.arange(4, dtype=np.float32).reshape(2, 2, 1)  # [[0, 1], [2, 3]]
    assert dihedral(a, False, 1)[..., 0].tolist() == [[1, 3], [0, 2]]
    assert dihedral(a, True, 0)[..., 0].tolist() == [[1, 0], [3, 2]]


def test_pad_to_patch_mirrors_like_cv2_border_reflect_and_keeps_alignment():
    import cv2
    gt = _coords(12, 20)
    lq = gt[::2, ::2]
    pg, pl = pad_to_patch(gt, lq, 16, 2)
    assert pg.shape == (16, 20, 3) and pl.shape == (8, 10, 3)
    np.testing.assert_array_equal(pl, cv2.copyMakeBorder(lq, 0, 2, 0, 0, cv2.BORDER_REFLECT))
    big = _coords(40, 40)
    assert pad_to_patch(big, big, 16, 1)[0] is big

"""Image I/O: formats, bit depths, channel handling, errors that name the file, tensor conversion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from basicsr.utils.img_util import ImageReadError, img2tensor, read_image, read_image_bytes, tensor2img, write_image
from data_helpers import random_image, save, shared_data


def test_reads_uint8_png_as_rgb_float_in_unit_range(tmp_path):
    img = random_image(8, 10)
    out = read_image(save(tmp_path / 'a.png', img))
    assert out.dtype == np.float32 and out.shape == (8, 10, 3)
    np.testing.assert_allclose(out, img / 255.0, atol=1e-7)  # RGB order preserved through BGR files


def test_reads_uint16_png_divided_by_65535(tmp_path):
    img = random_image(6, 7, dtype=np.uint16)
    out = read_image(save(tmp_path / 'a.png', img))
    np.testing.assert_allclose(out, img / 65535.0, atol=1e-7)
    raw = read_image(tmp_path / 'a.png', float32=False)
    assert raw.dtype == np.uint16 and np.array_equal(raw, img)


def test_gray_source_gives_three_channels_or_one(tmp_path):
    gray = random_image(5, 5, c=1)[:, :, 0]
    path = save(tmp_path / 'g.png', gray)
    rgb = read_image(path)
    assert rgb.shape == (5, 5, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert read_image(path, channels=1).shape == (5, 5, 1)
    assert read_image(path, channels=None).shape == (5, 5, 1)


def test_colour_to_one_channel_uses_bt601_luma(tmp_path):
    img = random_image(4, 4)
    out = read_image(save(tmp_path / 'c.png', img), channels=1, float32=False)[..., 0].astype(float)
    expect = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    assert np.abs(out - expect).max() <= 1.0


def test_real_mcmaster_tiff_and_set14_gray_png():
    tif = read_image(shared_data('McMaster') / '1.tif')
    assert tif.shape == (500, 500, 3) and 0.0 <= tif.min() and tif.max() <= 1.0
    bridge = read_image(shared_data('Set14/HR') / 'bridge.png')
    assert bridge.shape == (512, 512, 3)


def test_missing_file_error_names_it(tmp_path):
    with pytest.raises(ImageReadError, match='nope.png.*does not exist'):
        read_image(tmp_path / 'nope.png')


def test_empty_and_garbage_files_error_names_them(tmp_path):
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'junk.png').write_bytes(b'this is not an image' * 10)
    with pytest.raises(ImageReadError, match='empty.png.*empty'):
        read_image(tmp_path / 'empty.png')
    with pytest.raises(ImageReadError, match='junk.png.*corrupt'):
        read_image(tmp_path / 'junk.png')


@pytest.mark.parametrize('ext,fraction', [('.png', 0.6), ('.png', 0.999), ('.jpg', 0.7), ('.jpg', 0.995),
                                          ('.tif', 0.5)])
def test_truncated_files_are_detected(tmp_path, ext, fraction):
    full = save(tmp_path / f'full{ext}', random_image(64, 64, seed=3))
    data = full.read_bytes()
    cut = tmp_path / f'cut{ext}'
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ImageReadError, match=f'cut{ext}'):
        read_image(cut)


def test_read_image_bytes_names_the_given_path():
    with pytest.raises(ImageReadError, match='db.lmdb/key1'):
        read_image_bytes(b'\x89PNG\r\n\x1a\nxx', 'db.lmdb/key1')


def test_write_image_round_trip_float_and_uint8(tmp_path):
    img = random_image(9, 11, seed=4)
    write_image(tmp_path / 'deep' / 'dir' / 'u8.png', img)
    assert np.array_equal(read_image(tmp_path / 'deep' / 'dir' / 'u8.png', float32=False), img)
    write_image(tmp_path / 'f.png', img / 255.0)
    assert np.array_equal(read_image(tmp_path / 'f.png', float32=False), img)
    assert not list(tmp_path.glob('**/*.tmp'))  # no temporary file left behind


def test_write_image_gray_hw1_and_rounding(tmp_path):
    img = np.full((3, 3, 1), 0.5, np.float32)  # 127.5 rounds to 128 (round half to even gives 128 too)
    write_image(tmp_path / 'g.png', img)
    stored = cv2.imread(str(tmp_path / 'g.png'), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (3, 3) and int(stored[0, 0]) == 128


def test_img2tensor_and_tensor2img_invert_each_other():
    img = random_image(5, 6, seed=5)
    t = img2tensor(img / 255.0)
    assert t.shape == (3, 5, 6) and t.dtype == torch.float32
    assert np.array_equal(tensor2img(t), img)
    assert np.array_equal(tensor2img(t[None]), img)


def test_tensor2img_clamps_and_rounds_like_basicsr():
    t = torch.tensor([-0.2, 0.1, 0.50196, 1.3]).view(1, 1, 4)
    out = tensor2img(t)
    assert out.shape == (1, 4, 1)
    assert out[0, :, 0].tolist() == [0, 26, 128, 255]  # 0.1 * 255 = 25.5 -> 26 (round), not 25 (truncate)
    assert tensor2img(t, np.float32).max() == 1.0

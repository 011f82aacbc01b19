"""Image I/O and numpy <-> tensor conversion.

Convention inside the toolbox: numpy images are HWC, RGB (or HW1 gray), float32 in [0, 1]; tensors are
(C, H, W) float. OpenCV's BGR order never leaves this module.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional, Union

import cv2
import numpy as np
import torch

PathLike = Union[str, os.PathLike]

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_END = b'IEND\xaeB`\x82'
_JPEG_START = b'\xff\xd8'
_JPEG_END = b'\xff\xd9'
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class ImageReadError(ValueError):
    """An image file is missing, empty, truncated or cannot be decoded; the message names the file."""


def read_image(path: PathLike, channels: Optional[int] = 3, float32: bool = True) -> np.ndarray:
    """Read an image file as HWC RGB.

    Args:
        path: image file (PNG, JPEG, TIFF, BMP, ... anything OpenCV decodes; 8 or 16 bit).
        channels: 3 -> RGB (gray sources are replicated), 1 -> gray (colour sources are converted with
            OpenCV's BT.601 luma weights), None -> as stored (gray stays (H, W, 1), alpha is dropped).
        float32: True -> float32 in [0, 1] (uint8 / 255, uint16 / 65535); False -> the stored integer dtype.

    Returns:
        (H, W, C) array.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not a decodable image.
    """
    return read_image_bytes(_read_bytes(path), str(path), channels=channels, float32=float32)


def _read_bytes(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image file '{path}' does not exist") from None
    except IsADirectoryError:
        raise ImageReadError(f"image path '{path}' is a directory, not an image file") from None
    except OSError as exc:  # permissions, I/O errors: a problem of this file
        raise ImageReadError(f"image file '{path}' cannot be read: {exc.strerror or exc}") from None


def read_image_bytes(buf: bytes, path_for_messages: str, channels: Optional[int] = 3,
                     float32: bool = True) -> np.ndarray:
    """Decode an encoded image held in memory (e.g. an LMDB value); same output as :func:`read_image`.

    ``path_for_messages`` only appears in error messages, so a bad LMDB record names its database and key.
    """
    if channels not in (1, 3, None):
        raise ValueError(f'channels must be 1, 3 or None, got {channels!r}')
    img = _to_rgb_hwc(_decode(buf, path_for_messages), channels, path_for_messages)
    if not float32:
        return img
    return to_unit_float(img, path_for_messages)


class StoredImage(NamedTuple):
    """An image file as stored, for writing results back in the same form (see :func:`read_image_layers`)."""

    colour: np.ndarray  # (H, W, 1) gray or (H, W, 3) RGB, float32 in [0, 1]
    alpha: Optional[np.ndarray]  # (H, W, 1) float32 in [0, 1], or None
    bit_depth: int  # 8 (uint8), 16 (uint16) or 32 (float)


def read_image_layers(path: PathLike) -> StoredImage:
    """Read an image file keeping what :func:`read_image` converts away: gray stays one channel, the alpha
    channel is returned separately and the stored bit depth is reported.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not a decodable image.
    """
    raw = _decode(_read_bytes(path), str(path))
    raw = raw[:, :, None] if raw.ndim == 2 else raw
    alpha = None
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        alpha = to_unit_float(np.ascontiguousarray(raw[:, :, -1:]), str(path))
        raw = raw[:, :, :-1]
    colour = to_unit_float(_to_rgb_hwc(raw, None, str(path)), str(path))
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(raw.dtype, 32)
    return StoredImage(colour, alpha, depth)


def convert_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 1) gray <-> (H, W, 3) RGB: gray is replicated, colour becomes OpenCV's BT.601 luma."""
    if channels == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if channels == 1 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None]
    return img


def to_stored_layout(img: np.ndarray, stored: StoredImage, bit_depth: int = 8) -> np.ndarray:
    """A result ``img`` ((H', W', C) float in [0, 1], C = 1 or 3) in the layout of the file it came from:
    gray again if the file was gray, the file's alpha re-attached (resized bilinearly to H' x W' for
    super-resolution), as uint8 (``bit_depth`` 8) or uint16 (16) for :func:`write_image`."""
    if bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {bit_depth!r}')
    img = convert_channels(np.clip(img, 0.0, 1.0).astype(np.float32), stored.colour.shape[2])
    if stored.alpha is not None:
        alpha = stored.alpha
        if alpha.shape[:2] != img.shape[:2]:
            alpha = cv2.resize(alpha[:, :, 0], (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        img = np.concatenate([img, np.clip(alpha.reshape(*img.shape[:2], 1), 0.0, 1.0)], axis=2)
    peak, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    return (img * np.float32(peak)).round().astype(dtype)


def _decode(buf: bytes, name: str) -> np.ndarray:
    """Encoded bytes -> the stored array (OpenCV channel order, stored dtype); bad files raise naming ``name``."""
    if len(buf) == 0:
        raise ImageReadError(f"image file '{name}' is empty (0 bytes)")
    _check_complete(buf, name)
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"image file '{name}' ({len(buf)} bytes) is corrupt or not an image "
                             'format OpenCV can decode')
    return img


def _check_complete(buf: bytes, name: str) -> None:
    """Reject PNG/JPEG streams cut short: some decoders return a partly grey image with only a warning."""
    if buf.startswith(_PNG_SIGNATURE) and _PNG_END not in buf[-64:]:
        raise ImageReadError(f"image file '{name}' is a truncated PNG ({len(buf)} bytes, no IEND chunk at the end)")
    # JPEG files may carry a few padding bytes after the end-of-image marker
    if buf.startswith(_JPEG_START) and _JPEG_END not in buf[-64:]:
        raise ImageReadError(f"image file '{name}' is a truncated JPEG ({len(buf)} bytes, no end-of-image marker)")


def _to_rgb_hwc(img: np.ndarray, channels: Optional[int], name: str) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"image file '{name}' has an unsupported shape {img.shape}")
    if img.shape[2] == 2:  # gray + alpha
        img = img[:, :, :1]
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels is not None:
        img = convert_channels(img, channels)
    return np.ascontiguousarray(img)


def to_unit_float(img: np.ndarray, name: str = '') -> np.ndarray:
    """uint8 / 255, uint16 / 65535, float as is -> float32 (``name`` appears in the error for other types)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype in (np.float32, np.float64):
        return img.astype(np.float32)
    raise ImageReadError(f"image file '{name}' has unsupported pixel type {img.dtype} (expected uint8, uint16 "
                         'or float)')


def write_image(path: PathLike, img: np.ndarray) -> None:
    """Write an HWC RGB (or HW / HW1 gray, HW4 RGBA, HW2 gray + alpha) image; the format follows the
    extension (PNG is lossless and keeps alpha and 16 bits).

    Float input is taken as [0, 1] and stored as uint8 with BasicSR rounding (``(x * 255).round()``);
    uint8 and uint16 are stored as they are. Parent folders are created and the file is written to a
    temporary name first and then renamed, so a crash never leaves a half-written image behind.
    """
    path = Path(path)
    img = np.asarray(img)
    if img.dtype not in (np.uint8, np.uint16):
        img = (np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha: PNG writers take it as RGBA
        img = np.concatenate([np.repeat(img[:, :, :1], 3, axis=2), img[:, :, 1:]], axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim != 2:
        raise ValueError(f"cannot write an image of shape {img.shape} to '{path}' (expected HW, HW1, HW2, HW3 "
                         'or HW4)')
    ok, encoded = cv2.imencode(path.suffix or '.png', img)
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as '{path.suffix}' for '{path}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(encoded.tobytes())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) numpy image -> (C, H, W) float32 tensor (values unchanged)."""
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def tensor2img(tensor: torch.Tensor, out_type: type = np.uint8) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) tensor in [0, 1] -> (H, W, C) numpy RGB image.

    Values are clamped to [0, 1]; ``np.uint8`` output uses ``(x * 255).round()`` (the BasicSR convention
    that published PSNRs assume), ``np.uint16`` ``(x * 65535).round()``, ``np.float32`` stays in [0, 1].
    """
    t = tensor.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f'tensor2img takes one image; got a batch of shape {tuple(t.shape)}')
        t = t[0]
    if t.ndim != 3:
        raise ValueError(f'tensor2img expects (C, H, W) or (1, C, H, W); got shape {tuple(t.shape)}')
    img = t.float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    if out_type == np.uint8:
        return (img * 255.0).round().astype(np.uint8)
    if out_type == np.uint16:
        return (img * 65535.0).round().astype(np.uint16)
    if out_type == np.float32:
        return np.ascontiguousarray(img, dtype=np.float32)
    raise ValueError(f'tensor2img out_type must be np.uint8, np.uint16 or np.float32, got {out_type!r}')

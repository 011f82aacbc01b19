"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022).

Official code: megvii-research/NAFNet, basicsr/models/archs/NAFNet_arch.py. The blocks and the U-Net
body live in :mod:`basicsr.archs.conv_blocks` (shared with Baseline and NAFSSR). The TLC variant
``NAFNetLocal`` is this network converted by :func:`basicsr.inference.tlc.to_local`.
"""
from typing import Sequence

from basicsr.archs.conv_blocks import NAFBlock, NAFUNet
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class NAFNet(NAFUNet):
    """Nonlinear-activation-free U-Net of NAF blocks.

    Args:
        img_channel: input and output channels.
        width: channels of the first level (doubled at every encoder level).
        middle_blk_num: blocks at the lowest resolution.
        enc_blk_nums / dec_blk_nums: blocks per encoder / decoder level (same length).
    Input (B, img_channel, H, W) of any size (padded to ``2 ** len(enc_blk_nums)`` inside and cropped
    back); output the restored image, same shape (a residual on the input).
    """

    def __init__(self, img_channel: int = 3, width: int = 16, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (), dec_blk_nums: Sequence[int] = ()) -> None:
        super().__init__(NAFBlock, img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)

"""The baseline network of the NAFNet paper (Chen et al., ECCV 2022, section 3.2).

Official code: megvii-research/NAFNet, basicsr/models/archs/Baseline_arch.py. Same U-Net as NAFNet
(:class:`basicsr.archs.conv_blocks.NAFUNet`) with GELU and squeeze-excitation blocks.
"""
from typing import Sequence

from basicsr.archs.conv_blocks import BaselineBlock, NAFUNet
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class Baseline(NAFUNet):
    """U-Net of baseline blocks (layer norm, depthwise conv, GELU, channel attention).

    Args: as :class:`basicsr.archs.nafnet_arch.NAFNet`, plus ``dw_expand`` (expansion of the depthwise
    branch) and ``ffn_expand`` (expansion of the feed-forward branch).
    Input (B, img_channel, H, W) of any size; output the same shape.
    """

    def __init__(self, img_channel: int = 3, width: int = 16, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (), dec_blk_nums: Sequence[int] = (),
                 dw_expand: int = 1, ffn_expand: int = 2) -> None:
        super().__init__(BaselineBlock, img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums,
                         dw_expand=dw_expand, ffn_expand=ffn_expand)

"""Inference wrappers: padding, tiling, self-ensemble, TLC."""

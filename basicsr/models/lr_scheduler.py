"""BasicSR's ``basicsr.models.lr_scheduler`` names: the toolbox's iteration schedulers (:mod:`basicsr.engine.schedulers`)."""
from basicsr.engine.schedulers import CosineAnnealingRestartLR, MultiStepRestartLR

__all__ = ['CosineAnnealingRestartLR', 'MultiStepRestartLR']

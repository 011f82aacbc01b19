"""MiOIR's model types (``basicsr/models/ir_model.py`` of MiOIR), as names of the toolbox's models.

MiOIR's models all train one network with BasicSR's pixel loss, EMA and scheduler, which is what
:class:`~basicsr.models.image_restoration_model.ImageRestorationModel` does; they differ in what the network
is given and in test-time padding:

- ``*_AP`` feed ``[lq, lq]`` to the adaptive-prompt networks; the toolbox's ``*_AP`` networks take ``lq``
  (the same computation), so the model is the same.
- ``*_EP`` feed the explicit prompt of the sample's task; the task id comes from the data (``task``:
  MiOIR's lists, multi-task datasets), or from ``test.task_classifier`` where the data has none.
  ``*_EP_class`` is MiOIR's test with the classifier (``network_c`` / ``path_c`` in its files, read as
  ``test.task_classifier``). MiOIR's ``*_EP`` validation reads the task from an ``_r.``/``_h.``/... suffix of
  the file name instead; here the data must give the task (or a classifier must).
- ``SwinIR*`` pad test images (reflect, bottom/right) to a multiple of ``network_g.window_size``,
  ``Restormer*`` and ``PromptIR`` to 64, ``Uformer*`` to 128: filled in as ``val``/``test``
  ``pad_multiple`` unless the file sets one. MiOIR's Uformer test also pads non-square images to a square
  (centred reflect padding); that step is not reproduced.
- no gradient clipping unless ``train.use_grad_clip`` asks for it; weights load from ``params`` unless
  ``path.param_key_g`` says otherwise (BasicSR's loader default).
"""
from __future__ import annotations

from typing import Any, Dict

from torch import nn

from basicsr.models.classifier_model import ClassifierModel
from basicsr.models.image_restoration_model import ImageRestorationModel
from basicsr.utils.registry import MODEL_REGISTRY


class _MiOIRModel(ImageRestorationModel):
    """ImageRestorationModel with the test padding of one MiOIR model family (``pad`` or the window size)."""

    pad: int = 0
    pad_from_window: bool = False
    default_grad_clip = False  # MiOIR's models never clip
    task_from_name = False  # EP models: evaluation sets of PairedImageDataset read the task from the file name

    @classmethod
    def official_defaults(cls, opt: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """Option defaults of MiOIR's code for this model, ``{section: {key: value}}``: the ``pad_multiple`` of
        its ``test()`` and ``path.param_key_g: params`` (BasicSR's loader default; the toolbox's 'auto' would
        prefer ``params_ema``)."""
        pad = cls.pad
        if cls.pad_from_window:
            window = (opt.get('network_g') or {}).get('window_size')
            pad = int(window) if isinstance(window, int) else 0
        inference = {'pad_multiple': pad} if pad else {}
        out = {'val': inference, 'test': inference, 'path': {'param_key_g': 'params'}}
        if cls.task_from_name:
            out['eval_datasets'] = {'task_from_name': 'mioir'}
        return out


@MODEL_REGISTRY.register()
class IRModel(_MiOIRModel):
    """MiOIR's plain model (SRResNet): no test padding."""


@MODEL_REGISTRY.register()
class IRModel_AP(_MiOIRModel):  # noqa: N801 - MiOIR's names
    """MiOIR's adaptive-prompt model (SRResNet_AP)."""


@MODEL_REGISTRY.register()
class IRModel_EP(_MiOIRModel):  # noqa: N801
    """MiOIR's explicit-prompt model (SRResNet_EP): the task comes from the data."""
    task_from_name = True


@MODEL_REGISTRY.register()
class IRModel_EP_class(_MiOIRModel):  # noqa: N801
    """MiOIR's explicit-prompt test with the classifier (``test.task_classifier``)."""


@MODEL_REGISTRY.register()
class SwinIR(_MiOIRModel):
    """MiOIR's SwinIR model: test images padded to ``network_g.window_size``."""
    pad_from_window = True


@MODEL_REGISTRY.register()
class SwinIR_AP(SwinIR):  # noqa: N801
    """MiOIR's SwinIR_AP model."""


@MODEL_REGISTRY.register()
class SwinIR_EP(SwinIR):  # noqa: N801
    """MiOIR's SwinIR_EP model."""
    task_from_name = True


@MODEL_REGISTRY.register()
class SwinIR_EP_class(SwinIR):  # noqa: N801
    """MiOIR's SwinIR_EP test with the classifier."""


@MODEL_REGISTRY.register()
class Restormer(_MiOIRModel):
    """MiOIR's Restormer model: test images padded to 64."""
    pad = 64


@MODEL_REGISTRY.register()
class Restormer_AP(Restormer):  # noqa: N801
    """MiOIR's Restormer_AP model."""


@MODEL_REGISTRY.register()
class Restormer_EP(Restormer):  # noqa: N801
    """MiOIR's Restormer_EP model."""
    task_from_name = True


@MODEL_REGISTRY.register()
class Restormer_EP_class(Restormer):  # noqa: N801
    """MiOIR's Restormer_EP test with the classifier."""


@MODEL_REGISTRY.register()
class Uformer(_MiOIRModel):
    """MiOIR's Uformer model: test images padded to 128 (MiOIR's extra square padding is not reproduced)."""
    pad = 128


@MODEL_REGISTRY.register()
class Uformer_AP(Uformer):  # noqa: N801
    """MiOIR's Uformer_AP model."""


@MODEL_REGISTRY.register()
class Uformer_EP(Uformer):  # noqa: N801
    """MiOIR's Uformer_EP model."""
    task_from_name = True


@MODEL_REGISTRY.register()
class Uformer_EP_class(Uformer):  # noqa: N801
    """MiOIR's Uformer_EP test with the classifier."""


@MODEL_REGISTRY.register()
class PromptIR(_MiOIRModel):
    """MiOIR's PromptIR model: test images padded to 64; MiOIR's PromptIR network defaults to ``decoder: True``
    (the official PromptIR class to False), so a ``network_g`` of type PromptIR without ``decoder`` gets True."""
    pad = 64

    @classmethod
    def official_defaults(cls, opt: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        out = super().official_defaults(opt)
        if (opt.get('network_g') or {}).get('type') == 'PromptIR':
            out['network_g'] = {'decoder': True}
        return out


@MODEL_REGISTRY.register()
class ClassModel(ClassifierModel):
    """MiOIR's classifier model (``train_classifier.yml``): :class:`ClassifierModel` with MiOIR's two oddities.
    Its ``train.pixel_opt`` only switches the loss on (the loss is cross-entropy whatever its type says), and a
    ``Classifier`` without ``return_logits`` trains as MiOIR's does, cross-entropy on its softmax output.
    Validation sets are labelled by MiOIR's file-name suffixes (``task_from_name: mioir``)."""

    requires_logits = False

    @classmethod
    def official_defaults(cls, opt: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
        """MiOIR validates the classifier on sets whose labels are the file-name suffixes (``_r.``, ...)."""
        return {'eval_datasets': {'task_from_name': 'mioir'}}

    def build_losses(self, train: Dict[str, Any]) -> nn.Module:
        if not (train.get('pixel_opt') or train.get('perceptual_opt')):
            raise ValueError('ClassModel (MiOIR): train.pixel_opt switches on its cross-entropy loss and is missing')
        return super().build_losses({k: v for k, v in train.items() if not k.endswith('_opt')})

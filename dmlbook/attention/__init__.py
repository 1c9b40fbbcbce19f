"""Attention with readable weights.

* :mod:`.class_aware`: class-aware attention (CAA, Wang et al. AAAI 2019): one weight per sample from its
  classifier probability, low for outliers and mislabelled samples.
* :mod:`.mixed`: the mixed channel + spatial attention block for CNNs (CBAM-style, as in DeMAL-CNN).
* :mod:`.maps`: one spatial attention map per image, and its mass / pointing hit inside a ground-truth mask.
"""

from .class_aware import (
    ATTENTION_KINDS,
    ClassAwareAttention,
    attention_from_probability,
    class_aware_attention,
    pair_attention,
)
from .mixed import MixedAttention, record_attention

__all__ = [
    "ATTENTION_KINDS",
    "ClassAwareAttention",
    "attention_from_probability",
    "class_aware_attention",
    "pair_attention",
]
__all__ += ["MixedAttention", "record_attention"]

# per-image spatial maps and where they fall against a ground-truth mask (DeMAL-CNN chapter, issue 7)
from .maps import (
    centre_maps,
    mask_fraction,
    mass_in_mask,
    pointing_hits,
    spatial_attention_maps,
    uniform_maps,
)

__all__ += [
    "centre_maps",
    "mask_fraction",
    "mass_in_mask",
    "pointing_hits",
    "spatial_attention_maps",
    "uniform_maps",
]

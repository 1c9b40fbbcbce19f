"""Attention with readable weights.

* :mod:`.class_aware`: class-aware attention (CAA, Wang et al. AAAI 2019): one weight per sample from its
  classifier probability, low for outliers and mislabelled samples.
* :mod:`.mixed`: the mixed channel + spatial attention block for CNNs (CBAM-style, as in DeMAL-CNN).
"""
from .class_aware import ATTENTION_KINDS, ClassAwareAttention, class_aware_attention, pair_attention
from .mixed import MixedAttention, record_attention

__all__ = ["ATTENTION_KINDS", "ClassAwareAttention", "class_aware_attention", "pair_attention"]
__all__ += ["MixedAttention", "record_attention"]

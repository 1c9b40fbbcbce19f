"""MobileNetV2 (width 1.0) with a linear embedding, loading Google's or torchvision's ImageNet weights.

The network is MobileNetV2 (Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018): a 3x3 stride-2 stem conv, 17 inverted-residual blocks (1x1 expansion, 3x3 depthwise
conv, linear 1x1 projection; ReLU6; a skip connection when the shape is kept) and a 1x1 conv to 1280 channels,
then global average pooling. The module layout and parameter names are torchvision's ``mobilenet_v2`` (blocks
``features.0`` .. ``features.18``, head ``classifier.1``), so one architecture loads two weight formats; the
format picks the padding and the normalisation layers (``weights_format``, detected from the keys):

* ``"tf"``: Google's TF-slim ImageNet MobileNetV2 1.0/224, converted from its TFLite release to a PyTorch
  state_dict (``$DMLBOOK_DATA/weights/mobilenet_v2_imagenet_from_tflite.pt``, see that folder's README).
  BatchNorm is folded into the conv biases, so every conv has a ``.bias`` and the BatchNorm slots are
  ``nn.Identity``; the head has 1001 classes, **index 0 = background** and index ``i + 1`` = ImageNet class ``i``;
  inputs are RGB in [-1, 1] (``pixel / 127.5 - 1``); and every 3x3 conv uses TensorFlow **"SAME" padding**.
* ``"torchvision"``: torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1`` state_dict: convs without bias,
  BatchNorm after each of them, symmetric padding ``k // 2``, 1000 classes, ImageNet mean/std inputs.

TensorFlow "SAME" padding: for an input of size ``n``, kernel ``k`` and stride ``s`` the output has
``ceil(n / s)`` positions and the padding is ``total = max((ceil(n / s) - 1) * s + k - n, 0)``, split as
``before = total // 2`` and ``after = total - before``. For stride 1 (and for stride 2 with an odd ``n``) that is
1 pixel on each side of a 3x3 conv, as torch's ``padding=1``; for a stride-2 3x3 conv on an even ``n`` (all five
stride-2 convs at 224 px) it is **0 on the top/left and 1 on the bottom/right**. torch's symmetric padding
shifts the sampling grid by one pixel there; with the TF weights that drops the pooled-feature cosine to the
original model from 0.998 to 0.88 (weights README), so :class:`PaddedConv2d` pads the TF way for those weights.

Embedding: ``forward(x)`` = ``Linear(1280, embedding_dim)`` on the pooled features (optionally L2-normalised);
``forward(x, return_features=True)`` also returns those pooled features (for a classifier on them, e.g. the
class-aware attention of OSM+CAA); ``features(x)`` gives the pooled 1280-d features and ``classify(x)`` the
ImageNet logits of the loaded head.

Frozen stages: ``frozen_stages=n`` keeps the stem and the first ``n - 1`` bottleneck rows (stages ``0 .. n-1`` of
:data:`STAGES`) at their pretrained values (``requires_grad=False``) and runs them without autograd, so a training
step neither stores their activations nor back-propagates through them: at 112 px those high-resolution stages are
most of the cost of a backward pass (fine-tuning only the later stages is the usual choice when the budget is small).

Attention: ``attention_after=(stage, ...)`` puts a CBAM-style :class:`~dmlbook.attention.mixed.MixedAttention`
after those stages (the rows of Sandler et al.'s Table 2, see :data:`STAGES`), wrapped in a residual
:class:`ResidualAttention`, ``y = x + scale * (attention(x) - x)`` with a learnable scalar ``scale`` that starts
at 0 (``attention_init_scale``): at initialisation the block is the identity, so the pretrained features and
logits are unchanged (a bare CBAM block would multiply them by two sigmoid gates of about 0.5 each), and
fine-tuning moves ``scale`` and the gates away from it. The maps are computed in every forward pass and stay
readable (``block.attention.spatial_map``, :func:`~dmlbook.attention.mixed.record_attention`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int
from ..attention.mixed import MixedAttention
from ._inputs import check_images, dropout_rate, flag, positive_int, real, stage_indices
from .registry import register_model

if TYPE_CHECKING:
    from ..data.transforms import Compose

WeightsFormat = Literal["tf", "torchvision"]
WEIGHTS_FORMATS: tuple[str, ...] = ("tf", "torchvision")
WEIGHTS_FILENAME = "mobilenet_v2_imagenet_from_tflite.pt"
WEIGHTS_SUBDIR = "weights"
FEATURE_DIM = 1280
NUM_CLASSES = {"tf": 1001, "torchvision": 1000}  # TF: index 0 = background, index i + 1 = ImageNet class i
TF_MEAN = (0.5, 0.5, 0.5)  # ToTensor() then (x - 0.5) / 0.5 = pixel / 127.5 - 1, in [-1, 1]
TF_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Bottleneck rows of Sandler et al. 2018, Table 2: (expansion t, output channels c, repeats n, first stride s).
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Stages = the rows of Table 2 (stem conv, the 7 bottleneck rows, the 1x1 conv to 1280):
# (first block, last block, output channels, total stride) over the blocks features.0 .. features.18.
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 32, 2),
    (1, 1, 16, 2),
    (2, 3, 24, 4),
    (4, 6, 32, 8),
    (7, 10, 64, 16),
    (11, 13, 96, 16),
    (14, 16, 160, 32),
    (17, 17, 320, 32),
    (18, 18, 1280, 32),
)

PretrainedArg = str | os.PathLike | bool | None | Mapping[str, Tensor]


# ------------------------------------------------------------------------------------------------ padding
def tf_same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding ``(before, after)`` of one spatial axis of length ``size``.

    ``total = max((ceil(size / stride) - 1) * stride + kernel_size - size, 0)``, ``before = total // 2``,
    ``after = total - before``: odd totals put the extra pixel at the end (bottom / right), unlike torch's
    symmetric ``padding=kernel_size // 2``. E.g. ``tf_same_padding(224, 3, 2) == (0, 1)``.
    """
    for value, name in ((size, "size"), (kernel_size, "kernel_size"), (stride, "stride")):
        positive_int(value, name)
    return _same_padding(size, kernel_size, stride)


def _same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)  # -(-n // s) == ceil(n / s)
    return total // 2, total - total // 2


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with torch's symmetric padding (``kernel_size // 2``) or TensorFlow "SAME" padding.

    Args:
        in_channels, out_channels, kernel_size, stride, groups, bias: as for ``nn.Conv2d`` (square kernels).
        tf_same: pad each input as TensorFlow's "SAME" does (:func:`tf_same_padding`, recomputed for every
            input size), then convolve with ``padding=0``; ``False`` uses ``padding=kernel_size // 2``.

    Both give ``ceil(H / stride) x ceil(W / stride)`` outputs; they differ where the padding is odd (stride 2 on
    even sizes), where "SAME" pads only the bottom and right. Parameter names are ``nn.Conv2d``'s.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        tf_same: bool = False,
    ) -> None:
        same = flag(tf_same, "tf_same")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0 if same else kernel_size // 2,
            groups=groups,
            bias=bias,
        )
        self.tf_same = same

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_same:
            top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))  # (B, C, H + top + bottom, W + left + right)
        return super().forward(x)  # (B, C_out, ceil(H / s), ceil(W / s))

    def extra_repr(self) -> str:
        return super().extra_repr() + (", padding=tf_same" if self.tf_same else "")


# ------------------------------------------------------------------------------------------------- blocks
def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


class ConvNormAct(nn.Sequential):
    """``conv -> BatchNorm (torchvision format) or Identity (TF format, BN folded into the bias) -> ReLU6``.

    Children ``0``, ``1``, ``2`` as in torchvision's ``Conv2dNormActivation``, so the keys are ``<name>.0.weight``,
    ``<name>.0.bias`` (TF) or ``<name>.1.running_mean`` (torchvision).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        tf_format: bool,
    ) -> None:
        super().__init__(
            PaddedConv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                groups=groups,
                bias=tf_format,
                tf_same=tf_format,
            ),
            _norm(out_channels, not tf_format),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Inverted residual with a linear bottleneck (Sandler et al. 2018, Fig. 3b / Table 1).

    ``[1x1 expand to in * t, ReLU6] -> 3x3 depthwise (stride s), ReLU6 -> 1x1 project (linear)``, plus ``x`` when
    ``s == 1`` and ``in == out``: (B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s)). The expansion is left
    out when ``t == 1`` (block ``features.1``). Children as torchvision's (``conv.0`` .. ``conv.3``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, expand_ratio: int, tf_format: bool
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, tf_format=tf_format))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, tf_format=tf_format),
            PaddedConv2d(hidden, out_channels, 1, bias=tf_format, tf_same=tf_format),
            _norm(out_channels, not tf_format),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)  # (B, C_out, H', W')
        return x + y if self.use_residual else y  # (B, C_out, H', W')


class ResidualAttention(nn.Module):
    """A :class:`MixedAttention` block blended in residually: ``y = x + scale * (attention(x) - x)``.

    ``scale`` is a learnable scalar starting at ``init_scale`` (default 0: the block is exactly the identity at
    initialisation, so a pretrained network's outputs are unchanged; 1 gives the bare CBAM block). The maps of
    the last forward pass are ``self.attention.channel_weights`` / ``self.attention.spatial_map``.
    """

    def __init__(self, channels: int, *, reduction: int = 16, init_scale: float = 0.0) -> None:
        super().__init__()
        init_scale = real(init_scale, "attention_init_scale")
        self.attention = MixedAttention(channels, reduction=reduction)
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * (self.attention(x) - x)  # (B, C, H, W)


# ------------------------------------------------------------------------------------------------ weights
def default_weights_path() -> Path:
    """``$DMLBOOK_DATA/weights/mobilenet_v2_imagenet_from_tflite.pt`` (``./data/...`` when unset)."""
    from ..data.registry import data_home

    return data_home() / WEIGHTS_SUBDIR / WEIGHTS_FILENAME


def _expected_keys_help() -> str:
    return (
        "a MobileNetV2 (width 1.0) state_dict with torchvision's key names: 'features.0.0.weight' [32, 3, 3, 3] ... "
        "'features.18.0.weight' [1280, 320, 1, 1], 'classifier.1.weight' [classes, 1280]; in the TF format "
        "(weights/README.md) every conv also has a '.bias' and there are no BatchNorm keys (1001 classes), in "
        "torchvision's format convs have no bias and BatchNorm keys such as 'features.0.1.running_mean' follow "
        "them (1000 classes)"
    )


def _brief(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_mobilenet_v2_state_dict(path: str | os.PathLike[str]) -> OrderedDict[str, Tensor]:
    """Read a MobileNetV2 state_dict with ``torch.load(path, weights_only=True)``, with errors naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"MobileNetV2 weights file not found: {path}. Expected {_expected_keys_help()}. The default file is "
            f"$DMLBOOK_DATA/{WEIGHTS_SUBDIR}/{WEIGHTS_FILENAME} (DMLBOOK_DATA="
            f"{os.environ.get('DMLBOOK_DATA', '<unset>')!r}); pass pretrained=<path> to use another file."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle / zip errors, or a file that is not a torch.save at all
        raise ValueError(
            f"could not read {path} with torch.load(weights_only=True) ({type(err).__name__}: {err}); "
            f"expected {_expected_keys_help()}"
        ) from err
    return _check_state(state, str(path))


def _check_state(state: object, source: str) -> OrderedDict[str, Tensor]:
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise TypeError(
            f"{source} does not hold a state_dict (a mapping of str to tensors); got {type(state).__name__}. "
            f"Expected {_expected_keys_help()}"
        )
    return OrderedDict(state)


def detect_weights_format(state_dict: Mapping[str, Tensor], *, source: str = "the state_dict") -> str:
    """``"torchvision"`` if the keys have BatchNorm statistics, ``"tf"`` if the stem conv has a bias (BN folded);
    a ValueError naming ``source`` and the expected keys otherwise."""
    keys = list(state_dict)
    if "features.0.1.running_mean" in state_dict or any(k.endswith(".running_var") for k in keys):
        return "torchvision"
    if "features.0.0.bias" in state_dict:
        return "tf"
    raise ValueError(
        f"cannot tell the weights format of {source}: it has neither 'features.0.0.bias' (TF format, BatchNorm "
        f"folded) nor BatchNorm keys like 'features.0.1.running_mean' (torchvision format). Expected "
        f"{_expected_keys_help()}; got {len(keys)} keys: {_brief(keys)}"
    )


def _resolve_pretrained(pretrained: object) -> tuple[OrderedDict[str, Tensor], str] | None:
    """``(state_dict, description of its source)`` or None for no weights."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        path = default_weights_path()
        return load_mobilenet_v2_state_dict(path), str(path)
    if isinstance(pretrained, (str, os.PathLike)):
        path = Path(pretrained).expanduser()
        return load_mobilenet_v2_state_dict(path), str(path)
    if isinstance(pretrained, Mapping):
        return _check_state(pretrained, "pretrained (the given state_dict)"), "the given state_dict"
    raise TypeError(
        "pretrained must be a path to a weights file, True (the default file "
        f"$DMLBOOK_DATA/{WEIGHTS_SUBDIR}/{WEIGHTS_FILENAME}), None/False (random init) or a state_dict; "
        f"got {type(pretrained).__name__}"
    )


# -------------------------------------------------------------------------------------------------- model
class MobileNetV2(nn.Module):
    """MobileNetV2, width 1.0 (Sandler et al. 2018), global average pooling and a linear embedding layer.

    Args:
        embedding_dim: output dimension D of the embedding layer on the pooled 1280-d features.
        pretrained: ImageNet weights: a path to a state_dict file, ``True`` for the default file
            ``$DMLBOOK_DATA/weights/mobilenet_v2_imagenet_from_tflite.pt`` (Google's TF weights), a state_dict
            (mapping), or ``None``/``False`` for random initialisation (the default).
        weights_format: ``"tf"`` (bias in every conv, no BatchNorm, TF "SAME" padding, 1001 classes, inputs in
            [-1, 1]) or ``"torchvision"`` (BatchNorm, symmetric padding, 1000 classes, ImageNet mean/std).
            ``None`` (default) detects it from the weights' keys, or uses ``"torchvision"`` without weights;
            naming a format that the weights do not have is a ValueError.
        attention_after: stage indices (0-8, :data:`STAGES`: 0 = stem, 1-7 = the bottleneck rows of Table 2,
            8 = the 1x1 conv to 1280) followed by a :class:`ResidualAttention` mixed-attention block.
        attention_reduction: channel-MLP reduction ratio of the attention blocks.
        attention_init_scale: initial residual scale of the attention blocks (0: identity at initialisation).
        normalize: L2-normalise the embeddings (off by default: the losses normalise inside).
        dropout: dropout before the ImageNet classifier (torchvision: 0.2); only :meth:`classify` uses it.
        frozen_stages: freeze stages ``0 .. frozen_stages - 1`` (0: train everything, 9: the whole trunk): their
            parameters get ``requires_grad=False`` and, up to the first attention block, they run under
            ``torch.no_grad()``. BatchNorm layers of frozen stages (torchvision format) stay in eval mode.
            Attention blocks are never frozen.

    ``num_classes`` is the size of the ImageNet head: taken from the weights (1001 for Google's, index 0 =
    background; 1000 for torchvision's), else 1001 / 1000 by format. Without weights the TF format has no
    BatchNorm and is only a target for :meth:`load_imagenet_weights`; to train from scratch keep the default
    (``"torchvision"``, with BatchNorm).

    ``forward(x)``: (B, 3, H, W) -> (B, embedding_dim); :meth:`features`: pooled (B, 1280);
    :meth:`classify`: ImageNet logits (B, num_classes); :meth:`feature_maps`: (B, 1280, H/32, W/32).
    Inputs: for the TF weights RGB in [-1, 1] (``pixel / 127.5 - 1``), for torchvision's ImageNet-normalised;
    :func:`mobilenet_v2_transform` builds the matching preprocessing. Any H, W >= 32 works. On CPU, training is
    about twice as fast in channels-last layout (``net.to(memory_format=torch.channels_last)`` and inputs
    ``x.contiguous(memory_format=torch.channels_last)``); results agree up to float rounding.
    ``weights_source`` says where the weights came from (None: random init).
    """

    def __init__(
        self,
        embedding_dim: int = 512,
        *,
        pretrained: PretrainedArg = None,
        weights_format: WeightsFormat | None = None,
        attention_after: Sequence[int] = (),
        attention_reduction: int = 16,
        attention_init_scale: float = 0.0,
        normalize: bool = False,
        dropout: float = 0.2,
        frozen_stages: int = 0,
    ) -> None:
        super().__init__()
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        if weights_format is not None and weights_format not in WEIGHTS_FORMATS:
            raise ValueError(
                f"weights_format must be one of {WEIGHTS_FORMATS} or None; got {weights_format!r}"
            )
        self.attention_after = stage_indices(attention_after, len(STAGES), "attention_after")
        reduction = positive_int(attention_reduction, "attention_reduction")
        self.normalize = flag(normalize, "normalize")
        dropout = dropout_rate(dropout, "dropout")
        loaded = _resolve_pretrained(pretrained)
        if loaded is not None:
            state, source = loaded
            detected = detect_weights_format(state, source=source)
            if weights_format is not None and weights_format != detected:
                raise ValueError(
                    f"weights_format={weights_format!r} but {source} holds {detected!r}-format weights "
                    f"(detected from its keys); drop weights_format or pass weights_format={detected!r}"
                )
            weights_format = detected  # type: ignore[assignment]
        self.weights_format: str = weights_format or "torchvision"
        tf_format = self.weights_format == "tf"
        self.num_classes = NUM_CLASSES[self.weights_format]
        if (
            loaded is not None
            and "classifier.1.weight" in loaded[0]
            and loaded[0]["classifier.1.weight"].dim() == 2
        ):
            self.num_classes = int(loaded[0]["classifier.1.weight"].shape[0])

        blocks: list[nn.Module] = [ConvNormAct(3, 32, 3, stride=2, tf_format=tf_format)]  # features.0
        channels = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                blocks.append(
                    InvertedResidual(
                        channels, c, stride=s if i == 0 else 1, expand_ratio=t, tf_format=tf_format
                    )
                )
                channels = c
        blocks.append(ConvNormAct(channels, FEATURE_DIM, 1, tf_format=tf_format))  # features.18
        self.trunk = nn.Sequential(*blocks)  # torchvision's `features` (renamed: features() is a method here)
        self.attention = nn.ModuleDict(
            {
                str(stage): ResidualAttention(
                    STAGES[stage][2], reduction=reduction, init_scale=attention_init_scale
                )
                for stage in self.attention_after
            }
        )
        self._attention_at = {STAGES[stage][1]: str(stage) for stage in self.attention_after}
        self.classifier = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(FEATURE_DIM, self.num_classes))
        self.feature_dim = FEATURE_DIM
        self.embedding = nn.Linear(FEATURE_DIM, embedding_dim)
        self._init_imagenet_part()
        self.weights_source: str | None = None
        if loaded is not None:
            self.load_imagenet_weights(loaded[0], source=loaded[1])
        self.frozen_stages = 0
        self.freeze_stages(frozen_stages)

    def freeze_stages(self, n: int) -> None:
        """Freeze stages ``0 .. n - 1`` (:data:`STAGES`) and unfreeze the rest of the trunk; see the class doc."""
        n = check_int(n, "frozen_stages", 0, maximum=len(STAGES))
        self.frozen_stages = n
        self._frozen_blocks = STAGES[n - 1][1] + 1 if n else 0  # blocks trunk[0 .. _frozen_blocks - 1]
        for i, block in enumerate(self.trunk):
            for param in block.parameters():
                param.requires_grad_(i >= self._frozen_blocks)
        # blocks run without autograd: the frozen ones before the first (trainable) attention block
        self._no_grad_blocks = min([self._frozen_blocks, *(i + 1 for i in self._attention_at)])
        self.train(self.training)

    def train(self, mode: bool = True) -> MobileNetV2:
        super().train(mode)
        for block in list(self.trunk)[: getattr(self, "_frozen_blocks", 0)]:
            block.eval()  # frozen BatchNorm keeps its running statistics
        return self

    # ---------------------------------------------------------------------------------------- weights
    def _init_imagenet_part(self) -> None:
        """torchvision's initialisation (kaiming-normal fan-out convs, BN 1/0, N(0, 0.01) classifier)."""
        for m in self.trunk.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)

    def imagenet_state_dict(self) -> OrderedDict[str, Tensor]:
        """The ImageNet part (trunk + classifier) under the weight files' key names (``features.*``,
        ``classifier.1.*``); ``torch.save`` it to get a file that ``pretrained=`` loads."""
        out: OrderedDict[str, Tensor] = OrderedDict()
        for key, value in self.state_dict().items():
            if key.startswith("trunk."):
                out["features." + key[len("trunk.") :]] = value
            elif key.startswith("classifier."):
                out[key] = value
        return out

    def load_imagenet_weights(
        self, state_dict: Mapping[str, Tensor], *, source: str = "the state_dict"
    ) -> None:
        """Load a state_dict in the weight files' key names into the trunk and the classifier (strict: any
        missing, unexpected or wrongly shaped key is a ValueError naming ``source``; BatchNorm's
        ``num_batches_tracked`` may be absent). The embedding and attention layers keep their initialisation."""
        expected = self.imagenet_state_dict()
        given = _check_state(state_dict, source)
        optional = {k for k in expected if k.endswith("num_batches_tracked")}
        missing = [k for k in expected if k not in given and k not in optional]
        unexpected = [k for k in given if k not in expected]
        mismatched = [
            f"{k}: weights {list(given[k].shape)}, model {list(expected[k].shape)}"
            for k in expected
            if k in given and given[k].shape != expected[k].shape
        ]
        if missing or unexpected or mismatched:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing keys ({_brief(missing)})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected keys ({_brief(unexpected)})")
            if mismatched:
                parts.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:3])})")
            raise ValueError(
                f"the weights in {source} do not fit MobileNetV2 (width 1.0, weights_format="
                f"{self.weights_format!r}): {', '.join(parts)}. Expected {_expected_keys_help()}"
            )
        renamed = OrderedDict(
            ("trunk." + k[len("features.") :] if k.startswith("features.") else k, v)
            for k, v in given.items()
        )
        result = self.load_state_dict(renamed, strict=False)
        leftover = [
            k
            for k in result.missing_keys
            if k.startswith(("trunk.", "classifier.")) and not k.endswith("num_batches_tracked")
        ]
        assert not leftover and not result.unexpected_keys, (leftover, result.unexpected_keys)
        self.weights_source = source

    # ---------------------------------------------------------------------------------------- forward
    @property
    def background_class(self) -> bool:
        """True when the head has Google's 1001 classes (index 0 = background, index i + 1 = ImageNet class i)."""
        return self.num_classes == 1001

    def feature_maps(self, x: Tensor) -> Tensor:
        """Last feature maps, after the attention blocks: (B, 3, H, W) -> (B, 1280, ceil(H/32), ceil(W/32))."""
        x = check_images(x, 3, min_size=32)  # (B, 3, H, W)
        for i, block in enumerate(self.trunk):
            if i < self._no_grad_blocks:
                with torch.no_grad():
                    x = block(x)  # (B, C_i, H / stride_i, W / stride_i), no autograd graph
            else:
                x = block(x)  # (B, C_i, H / stride_i, W / stride_i)
            if i in self._attention_at:
                x = self.attention[self._attention_at[i]](x)  # same shape
        return x  # (B, 1280, H / 32, W / 32)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled features: (B, 3, H, W) -> (B, 1280), non-negative (after ReLU6)."""
        return self.feature_maps(x).mean(dim=(2, 3))  # (B, 1280)

    def classify(self, x: Tensor, *, imagenet1k: bool = False) -> Tensor:
        """ImageNet logits of the loaded head: (B, 3, H, W) -> (B, num_classes), 1001 for the TF weights
        (index 0 = background). ``imagenet1k=True`` drops the background column: (B, 1000), standard order."""
        logits = self.classifier(self.features(x))  # (B, num_classes)
        if flag(imagenet1k, "imagenet1k") and self.background_class:
            logits = logits[:, 1:]  # (B, 1000)
        return logits

    def forward(self, x: Tensor, *, return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Embeddings (B, D); with ``return_features=True`` the pair ``(embeddings (B, D), pooled (B, 1280))``."""
        pooled = self.features(x)  # (B, 1280)
        z = self.embedding(pooled)  # (B, D)
        z = F.normalize(z, dim=1) if self.normalize else z  # (B, D)
        return (z, pooled) if flag(return_features, "return_features") else z

    def extra_repr(self) -> str:
        return (
            f"weights_format={self.weights_format!r}, embedding_dim={self.embedding_dim}, "
            f"attention_after={self.attention_after}, frozen_stages={self.frozen_stages}, "
            f"weights_source={self.weights_source!r}"
        )


# ---------------------------------------------------------------------------------------- preprocessing
def mobilenet_v2_transform(
    size: int = 224, *, weights_format: WeightsFormat = "tf", resize_to: int | None = None
) -> Compose:
    """Evaluation preprocessing for PIL images (or (C, H, W) uint8/float tensors) -> (3, size, size) float.

    ``"tf"``: resize the shorter side to ``resize_to`` (default ``size``, bicubic), centre-crop ``size``, scale
    to [-1, 1] (``pixel / 127.5 - 1``), as used to check the TF weights. ``"torchvision"``: shorter side to
    ``resize_to`` (default ``size * 8 / 7``, bilinear), centre crop, ImageNet mean/std.
    """
    from ..data.transforms import eval_transform

    positive_int(size, "size")
    if weights_format == "tf":
        return eval_transform(
            size,
            resize_to=size if resize_to is None else resize_to,
            mean=TF_MEAN,
            std=TF_STD,
            interpolation="bicubic",
        )
    if weights_format == "torchvision":
        return eval_transform(size, resize_to=resize_to, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    raise ValueError(f"weights_format must be one of {WEIGHTS_FORMATS}; got {weights_format!r}")


# ----------------------------------------------------------------------------------------------- registry
def _build_mobilenet_v2(*, in_channels: int | None, **kwargs: Any) -> nn.Module:
    if in_channels not in (None, 3):
        raise ValueError(
            f"'mobilenet_v2' is an ImageNet (RGB) network: in_channels must be 3; got {in_channels}"
        )
    return MobileNetV2(**kwargs)


register_model(
    "mobilenet_v2",
    _build_mobilenet_v2,
    input="images",
    description="MobileNetV2 1.0 + linear embedding; pretrained=True loads $DMLBOOK_DATA/weights (TF SAME "
    "padding) or a torchvision state_dict; attention_after=(stages)",
    accepts=MobileNetV2,
)

__all__ = [
    "FEATURE_DIM",
    "INVERTED_RESIDUAL_SETTING",
    "STAGES",
    "TF_MEAN",
    "TF_STD",
    "WEIGHTS_FILENAME",
    "WEIGHTS_FORMATS",
    "ConvNormAct",
    "InvertedResidual",
    "MobileNetV2",
    "PaddedConv2d",
    "ResidualAttention",
    "default_weights_path",
    "detect_weights_format",
    "load_mobilenet_v2_state_dict",
    "mobilenet_v2_transform",
    "tf_same_padding",
]

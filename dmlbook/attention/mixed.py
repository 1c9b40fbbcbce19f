"""Mixed channel + spatial attention for CNN feature maps, with readable maps.

The block is CBAM (Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018): first a
channel gate from globally pooled descriptors, then a spatial gate from channel-pooled maps,

    M_c = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))            # (B, C), one shared MLP
    F'  = M_c * F
    M_s = sigmoid(conv_kxk([AvgPool_c(F'); MaxPool_c(F')]))     # (B, 1, H, W)
    F'' = M_s * F'

DeMAL-CNN (He, Wang, Zhao, Yao, Complex & Intelligent Systems 2022; skin-lesion classification with a
triplet network plus a classification loss) integrates "spatial-wise and channel-wise" mixed attention into
each embedding network; its abstract does not give the block, so here the order (channel then spatial,
sequential), the MLP reduction ratio (16), the 7x7 kernel and the placement in the backbone are
**reconstructed from CBAM**, not the paper's.

Reading the maps: after every forward pass ``block.channel_weights`` (B, C) and ``block.spatial_map``
(B, 1, H, W) hold detached copies of the last maps, and the gates are separate ``nn.Sigmoid`` submodules
(``block.channel_gate``, ``block.spatial_gate``) whose forward hooks see the maps with their gradients;
:func:`record_attention` uses those hooks to collect the maps of every block in a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_flag, check_int

MAP_KINDS = ("spatial", "channel")


def channel_descriptors(x: Tensor) -> Tensor:
    """Global average- and max-pooled channel descriptors, stacked: (B, C, H, W) -> (2, B, C)."""
    return torch.stack([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))])  # (2, B, C)


def spatial_descriptors(x: Tensor) -> Tensor:
    """Mean and max over channels at every position, stacked: (B, C, H, W) -> (B, 2, H, W)."""
    return torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)


class MixedAttention(nn.Module):
    """CBAM-style mixed attention: a channel gate, then a spatial gate (Woo et al. 2018; DeMAL-CNN 2022).

    Args:
        channels: number of channels C of the feature maps it will see.
        reduction: hidden width of the shared channel MLP is ``max(1, C // reduction)`` (CBAM: 16).
        kernel_size: odd size k of the spatial convolution (CBAM: 7); padding keeps H x W.
        channel: use the channel gate (``False`` gives spatial-only attention).
        spatial: use the spatial gate (``False`` gives channel-only attention, i.e. an SE-like block with
            max pooling added).

    Input (B, C, H, W) -> output of the same shape. The parts that are switched off are ``None``
    (``channel_mlp``/``channel_gate`` or ``spatial_conv``/``spatial_gate``) and so are their maps.
    Only the order, the ratio, the kernel and the placement of DeMAL-CNN's block are reconstructed (see the
    module docstring); the equations are CBAM's. Unlike CBAM's reference block the spatial convolution
    here has a bias and no batch norm, so that the map is exactly ``sigmoid(conv(...))`` as written above.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 16,
        kernel_size: int = 7,
        channel: bool = True,
        spatial: bool = True,
    ) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", 1)
        self.reduction = check_int(reduction, "reduction", 1)
        self.kernel_size = check_int(kernel_size, "kernel_size", 1)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that the spatial map keeps H x W; got {kernel_size}"
            )
        if not (check_flag(channel, "channel") | check_flag(spatial, "spatial")):
            raise ValueError("channel and spatial are both False: at least one gate must be on")
        hidden = max(1, channels // reduction)
        self.channel_mlp: nn.Module | None = None
        self.channel_gate: nn.Module | None = None
        self.spatial_conv: nn.Module | None = None
        self.spatial_gate: nn.Module | None = None
        if channel:
            self.channel_mlp = nn.Sequential(
                nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
            )
            self.channel_gate = nn.Sigmoid()
        if spatial:
            self.spatial_conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
            self.spatial_gate = nn.Sigmoid()
        self.channel_weights: Tensor | None = None  # (B, C) of the last call, detached
        self.spatial_map: Tensor | None = None  # (B, 1, H, W) of the last call, detached

    def _check_input(self, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"x must be a torch.Tensor of shape (batch, channels, height, width); got {type(x).__name__}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"x must have shape (batch, {self.channels}, height, width) to match "
                f"channels={self.channels}; got {tuple(x.shape)}"
            )
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self._check_input(x)  # (B, C, H, W)
        if self.channel_mlp is not None and self.channel_gate is not None:
            scores = self.channel_mlp(channel_descriptors(x)).sum(dim=0)  # (B, C): MLP(avg) + MLP(max)
            weights = self.channel_gate(scores)  # (B, C) in (0, 1)
            x = x * weights[:, :, None, None]  # (B, C, H, W)
            self.channel_weights = weights.detach()
        if self.spatial_conv is not None and self.spatial_gate is not None:
            attention = self.spatial_gate(self.spatial_conv(spatial_descriptors(x)))  # (B, 1, H, W) in (0, 1)
            x = x * attention  # (B, C, H, W)
            self.spatial_map = attention.detach()
        return x

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, reduction={self.reduction}, kernel_size={self.kernel_size}, "
            f"channel={self.channel_mlp is not None}, spatial={self.spatial_conv is not None}"
        )


@contextmanager
def record_attention(
    model: nn.Module, *, kind: str = "spatial", detach: bool = True
) -> Iterator[list[Tensor]]:
    """Collect the attention maps of every :class:`MixedAttention` in ``model`` while the block is open.

    ::

        with record_attention(net) as maps:
            net(images)
        # maps: one (B, 1, H_i, W_i) tensor per block, in the order the blocks ran

    Args:
        model: any module; its ``MixedAttention`` submodules (or itself) are hooked.
        kind: ``"spatial"`` for the (B, 1, H, W) maps, ``"channel"`` for the (B, C) channel weights. Blocks
            without that gate are skipped.
        detach: store detached maps (default); ``False`` keeps the graph, e.g. for an attention regulariser.

    Every forward pass inside the block appends one map per block (two calls give twice as many). The hooks
    are removed on exit, also when the block raises. A model with no block of that kind raises a ValueError.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_choice(kind, MAP_KINDS, "kind")
    check_flag(detach, "detach")
    blocks = [m for m in model.modules() if isinstance(m, MixedAttention)]
    gates = [b.spatial_gate if kind == "spatial" else b.channel_gate for b in blocks]
    gates = [g for g in gates if g is not None]
    if not gates:
        raise ValueError(
            f"model has no MixedAttention block with a {kind} gate; nothing to record "
            f"(was it built with attention=True?)"
        )
    maps: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        maps.append(output.detach() if detach else output)

    handles = [g.register_forward_hook(hook) for g in gates]
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


__all__ = ["MAP_KINDS", "MixedAttention", "channel_descriptors", "record_attention", "spatial_descriptors"]

"""Reading spatial attention maps per image, and scoring where they fall against a ground-truth region.

The spatial gate of a :class:`~dmlbook.attention.mixed.MixedAttention` block (CBAM; DeMAL-CNN's mixed
attention) is ``M_s = sigmoid(conv([AvgPool_c(F); MaxPool_c(F)]))``, one value in (0, 1) per position of the
block's feature map. :func:`spatial_attention_maps` runs a model on a batch of images, collects these maps from
every block (:func:`~dmlbook.attention.mixed.record_attention`), resizes them to the image size (bilinear,
``align_corners=False``: feature cell ``(i, j)`` of a stride-``s`` map sits at pixel ``((i + ½)s, (j + ½)s)``)
and returns one map per image.

Two standard ways to ask whether attention falls on the object, given a binary mask ``G`` of it (for skin
lesions: the experts' lesion segmentation of PH2):

* **mass inside the mask** (the "energy-based pointing game" of Wang et al., Score-CAM, CVPR-W 2020)::

      share = Σ_{p ∈ G} A_p / Σ_p A_p            (A ≥ 0; a constant map gives |G| / (H W))

  A uniform map scores the mask's area fraction, which is the baseline to beat;
* **pointing game** (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016): a hit when
  the map's maximum lies inside ``G`` (optionally within ``tolerance`` pixels of it).

:func:`uniform_maps` and :func:`centre_maps` give the reference maps (a centred Gaussian: dermoscopy images are
usually taken with the lesion in the middle, so a map that only "looks at the centre" is the harder baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_positive, check_size
from .mixed import record_attention

NORMALIZATIONS = ("sum", "shifted_sum", "none")


def _size(size: int | Sequence[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    return default if size is None else check_size(size)


def normalize_maps(maps: Tensor, normalize: str = "sum") -> Tensor:
    """Per-map normalisation of non-negative maps (N, H, W).

    ``"sum"``: ``A / Σ A`` (each map sums to 1, a distribution over pixels; a constant map becomes uniform);
    ``"shifted_sum"``: ``(A − min A) / Σ (A − min A)`` (only the contrast counts; a constant map becomes
    uniform); ``"none"``: unchanged.
    """
    check_choice(normalize, NORMALIZATIONS, "normalize")
    maps = _check_maps(maps, "maps")
    if normalize == "none":
        return maps
    if normalize == "shifted_sum":
        maps = maps - maps.amin(dim=(1, 2), keepdim=True)  # (N, H, W)
    total = maps.sum(dim=(1, 2), keepdim=True)  # (N, 1, 1)
    flat = total <= 0  # constant after the shift (or all zero): uniform
    uniform = torch.full_like(maps, 1.0 / (maps.shape[1] * maps.shape[2]))
    return torch.where(flat, uniform, maps / torch.where(flat, torch.ones_like(total), total))  # (N, H, W)


@torch.no_grad()
def spatial_attention_maps(
    model: nn.Module,
    x: Tensor,
    *,
    size: int | Sequence[int] | None = None,
    block: int | str = "mean",
    normalize: str = "sum",
    batch_size: int = 256,
) -> Tensor:
    """One spatial attention map per image: (N, C, H, W) -> (N, H_out, W_out), in eval mode.

    Args:
        model: a module with :class:`~dmlbook.attention.mixed.MixedAttention` blocks that have a spatial gate
            (e.g. ``SmallCNN(attention=True)``, ``MobileNetV2(attention_after=...)``); its ``forward(x)`` is run.
        x: the inputs (images, or the cached feature maps a head runs on).
        size: output (height, width) (int: square); default: the input's H x W.
        block: which block's map, by the order in which the blocks run (an int, negative counts from the end),
            or ``"mean"``: the mean of every block's map after resizing.
        normalize: ``"sum"`` (each map sums to 1), ``"shifted_sum"`` (minimum subtracted first) or ``"none"``
            (the gate values in (0, 1)); see :func:`normalize_maps`.
        batch_size: images per forward pass.

    The model's training mode is restored afterwards. Maps are returned in float32 on the input's device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    _check_tensor(x, "x", "(N, C, H, W)", floating=True)
    if isinstance(block, str):
        check_choice(block, ("mean",), "block")
    elif isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"block must be an int (the block's position) or 'mean'; got {type(block).__name__}")
    check_choice(normalize, NORMALIZATIONS, "normalize")
    batch_size = check_int(batch_size, "batch_size", 1)
    out_size = _size(size, (x.shape[2], x.shape[3]))
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, x.shape[0], batch_size):
            with record_attention(model, kind="spatial") as recorded:
                model(x[start : start + batch_size])
            if not isinstance(block, str) and not -len(recorded) <= block < len(recorded):
                raise ValueError(
                    f"block must be in [{-len(recorded)}, {len(recorded) - 1}]: the model has "
                    f"{len(recorded)} spatial attention maps; got {block}"
                )
            resized = [
                F.interpolate(m.float(), size=out_size, mode="bilinear", align_corners=False)[:, 0]
                for m in recorded
            ]  # each (b, H_out, W_out)
            chunks.append(
                torch.stack(resized).mean(0) if block == "mean" else resized[block]
            )  # (b, H_out, W_out)
    finally:
        model.train(was_training)
    return normalize_maps(torch.cat(chunks), normalize)  # (N, H_out, W_out)


def _check_tensor(x: object, name: str, shape: str, *, floating: bool = False) -> Tensor:
    """A tensor with ``shape``'s number of dimensions: not a (floating-point) tensor is a TypeError, another
    number of dimensions a ValueError."""
    kind = "floating-point tensor" if floating else "tensor"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a {kind} of shape {shape}; got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a {kind} of shape {shape}; got dtype {x.dtype}")
    if x.dim() != shape.count(",") + 1:
        raise ValueError(f"{name} must be a {kind} of shape {shape}; got shape {tuple(x.shape)}")
    return x


def _check_maps(maps: object, name: str) -> Tensor:
    maps = _check_tensor(maps, name, "(N, H, W)", floating=True)
    if not bool(torch.isfinite(maps).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool((maps < 0).any()):
        raise ValueError(
            f"{name} must be non-negative (attention weights); the smallest value is {float(maps.min())}"
        )
    return maps


def _check_masks(masks: object, maps: Tensor) -> Tensor:
    if not isinstance(masks, Tensor):
        raise TypeError(
            f"masks must be a boolean tensor of shape {tuple(maps.shape)}; got {type(masks).__name__}"
        )
    if masks.dtype != torch.bool:
        if masks.is_floating_point() or not bool(((masks == 0) | (masks == 1)).all()):
            raise TypeError(f"masks must be boolean (or 0/1 integers); got {masks.dtype}")
        masks = masks.bool()
    if masks.shape != maps.shape:
        raise ValueError(
            f"masks must have the maps' shape {tuple(maps.shape)} (resize them together); "
            f"got {tuple(masks.shape)}"
        )
    return masks.to(maps.device)


def mass_in_mask(maps: Tensor, masks: Tensor) -> Tensor:
    """Share of each map's mass inside its mask, ``Σ_{p∈G} A_p / Σ_p A_p``: (N, H, W) x2 -> (N,) in [0, 1].

    ``maps`` are non-negative (normalisation does not matter: the share is scale-free); an all-zero map counts
    as uniform. ``masks`` are boolean (or 0/1) of the same shape. A uniform map gives the mask's area fraction.
    """
    maps = _check_maps(maps, "maps")
    masks = _check_masks(masks, maps)
    p = normalize_maps(maps, "sum")  # (N, H, W), sums to 1
    return (p * masks).sum(dim=(1, 2))  # (N,)


def mask_fraction(masks: Tensor) -> Tensor:
    """Area fraction of each mask, (N, H, W) -> (N,): the share a uniform map puts inside it."""
    masks = _check_tensor(masks, "masks", "(N, H, W)")
    return masks.float().mean(dim=(1, 2))  # (N,)


def pointing_hits(maps: Tensor, masks: Tensor, *, tolerance: int = 0) -> Tensor:
    """Pointing game: whether each map's maximum lies inside its mask (grown by ``tolerance`` pixels), (N,) bool.

    Ties are broken by the first maximum in row-major order (so a constant map points at the top-left pixel).
    Zhang et al. (ECCV 2016) use a 15-pixel tolerance at full resolution.
    """
    maps = _check_maps(maps, "maps")
    masks = _check_masks(masks, maps)
    tolerance = check_int(tolerance, "tolerance", 0)  # pixels
    if tolerance:
        k = 2 * tolerance + 1
        masks = (
            F.max_pool2d(masks[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0
        )  # (N, H, W) dilated
    flat = maps.flatten(1).argmax(dim=1)  # (N,)
    return masks.flatten(1).gather(1, flat[:, None])[:, 0]  # (N,)


def uniform_maps(n: int, size: int | Sequence[int], *, device: torch.device | str | None = None) -> Tensor:
    """``n`` uniform maps (each sums to 1): the baseline of :func:`mass_in_mask` (it scores the mask fraction)."""
    n = check_int(n, "n", 0)
    h, w = _size(size, (1, 1))
    return torch.full((n, h, w), 1.0 / (h * w), device=device)  # (n, H, W)


def centre_maps(
    n: int, size: int | Sequence[int], *, sigma: float = 0.25, device: torch.device | str | None = None
) -> Tensor:
    """``n`` copies of an isotropic Gaussian centred in the image, standard deviation ``sigma`` times the shorter
    side, normalised to sum 1: the "lesion is in the middle" baseline."""
    n = check_int(n, "n", 0)
    h, w = _size(size, (1, 1))
    sigma = check_positive(sigma, "sigma") * min(h, w)
    yy = torch.arange(h, dtype=torch.float32, device=device) + 0.5 - h / 2  # (H,)
    xx = torch.arange(w, dtype=torch.float32, device=device) + 0.5 - w / 2  # (W,)
    g = torch.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * sigma**2))  # (H, W)
    return (g / g.sum()).expand(n, h, w).clone()  # (n, H, W)


__all__ = [
    "NORMALIZATIONS",
    "centre_maps",
    "mask_fraction",
    "mass_in_mask",
    "normalize_maps",
    "pointing_hits",
    "spatial_attention_maps",
    "uniform_maps",
]

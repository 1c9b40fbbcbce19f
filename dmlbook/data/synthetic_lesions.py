"""Generated dermoscopy-like images with exact lesion masks: :func:`make_lesions`, a teaching stand-in for
ISIC 2016 and PH2 (:mod:`dmlbook.data.skin`) that runs offline and knows where every lesion is.

Only the lesion depends on the class, through a severity that sets the ABCD signs dermatologists read
(asymmetry, border irregularity, colour variegation; Stolz et al., "ABCD rule of dermatoscopy", Eur. J.
Dermatol. 1994); hairs, vignetting and illumination are class-free distractors. :func:`make_lesions` is also
importable from :mod:`dmlbook.data` and :mod:`dmlbook.data.skin`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._checks import check_float, check_int
from .dataset import DMLDataset

__all__ = ["make_lesions"]


def _check_counts(n_per_class: Sequence[int]) -> list[int]:
    if isinstance(n_per_class, (str, bytes)) or not isinstance(n_per_class, Sequence) or not n_per_class:
        raise TypeError(
            f"n_per_class must be a non-empty sequence of ints (one per class); got {n_per_class!r}"
        )
    out = []
    for n in n_per_class:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n_per_class must hold ints >= 1; got {list(n_per_class)}")
        if n < 1:
            raise ValueError(f"n_per_class must hold ints >= 1; got {list(n_per_class)}")
        out.append(int(n))
    return out


def make_lesions(
    n_per_class: Sequence[int] = (160, 40),
    *,
    size: int = 64,
    severity: Sequence[Sequence[float]] = ((0.0, 0.6), (0.4, 1.0)),
    class_names: Sequence[str] | None = ("benign", "malignant"),  # ISIC 2016's classes (skin.ISIC_CLASSES)
    hairs: float = 1.5,
    tone: float = 0.0,
    seed: int = 0,
) -> DMLDataset:
    """Generated dermoscopy-like RGB images with their exact lesion masks (a teaching stand-in for ISIC / PH2).

    Every image is skin (a tone, an illumination gradient, a dark dermatoscope vignette, pixel noise, and a
    Poisson(``hairs``) number of dark hairs) with one pigmented lesion at a random place near the centre and of
    random size. Only the lesion depends on the class, through a *severity* ``s`` drawn uniformly from the class's
    ``severity`` range; ``s`` sets the ABCD-like signs that dermatologists read:

    * border irregularity: radius ``r(θ) = r₀ (1 + Σ_{k=3..7} a_k cos(kθ + φ_k))`` with ``a_k ∝ s``;
    * asymmetry: elongation ``1 + 0.5 s`` along a random axis;
    * colour variegation: up to three dark-brown / blue-grey blotches inside the lesion with weight ``∝ s``.

    Overlapping severity ranges make the classes overlap (no classifier is perfect). Hairs and the vignette are
    dark like the lesion but carry no class information: attention that finds the *lesion* should ignore them.

    Args:
        n_per_class: images per class (e.g. ``(160, 40)``: imbalanced like ISIC 2016, 20 % malignant).
        size: image side in pixels.
        severity: ``(low, high)`` per class, inside [0, 1].
        class_names: one per class (default ISIC's benign / malignant); ``None`` for none.
        hairs: mean number of hairs per image.
        tone: skin-tone and illumination shift in [-1, 1] (e.g. 0.5 for a second "clinic", a domain shift).
        seed: everything is drawn from ``numpy.random.default_rng(seed)``.

    Returns a :class:`~dmlbook.data.DMLDataset` with ``uint8`` data (N, 3, size, size) (as float in [0, 1] when
    indexed), labels in class order, and ``meta["mask"]`` (N, size, size) bool, ``meta["severity"]`` (N,).
    """
    counts = _check_counts(n_per_class)
    check_int(size, "size", 16)
    ranges = np.asarray(severity, dtype=np.float64)
    if (
        ranges.shape != (len(counts), 2)
        or not ((0 <= ranges) & (ranges <= 1)).all()
        or (ranges[:, 0] > ranges[:, 1]).any()
    ):
        raise ValueError(
            f"severity must hold one (low, high) pair in [0, 1] per class ({len(counts)}); got {severity!r}"
        )
    if class_names is not None and len(class_names) != len(counts):
        raise ValueError(f"class_names has {len(class_names)} entries but n_per_class has {len(counts)}")
    check_float(hairs, "hairs", minimum=0.0, maximum=20.0)
    check_float(tone, "tone", minimum=-1.0, maximum=1.0)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    n = len(labels)
    s = rng.uniform(ranges[labels, 0], ranges[labels, 1])  # (N,) severity
    grid = (np.arange(size) + 0.5) / size - 0.5  # (S,) in (-0.5, 0.5)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")  # (S, S)

    def col(v: np.ndarray) -> np.ndarray:
        return v[:, None, None]

    # ---- the lesion's shape: centre, radius, elongation, irregular border
    cy, cx = rng.uniform(-0.15, 0.15, n), rng.uniform(-0.15, 0.15, n)
    r0 = rng.uniform(0.17, 0.30, n)
    angle = rng.uniform(0, np.pi, n)
    stretch = 1.0 + 0.5 * s * rng.uniform(0.5, 1.0, n)
    dy, dx = yy[None] - col(cy), xx[None] - col(cx)  # (N, S, S)
    u = dx * col(np.cos(angle)) + dy * col(np.sin(angle))  # along the long axis
    v = -dx * col(np.sin(angle)) + dy * col(np.cos(angle))
    rho = np.hypot(u / col(np.sqrt(stretch)), v * col(np.sqrt(stretch))) / col(r0)  # (N, S, S)
    theta = np.arctan2(v, u)
    border = np.ones_like(rho)
    for k in range(3, 8):
        amp = (0.02 + 0.30 * s) * rng.uniform(0.3, 1.0, n) * 3.0 / k  # (N,)
        border += col(amp) * np.cos(k * theta + col(rng.uniform(0, 2 * np.pi, n)))
    mask = rho < border  # (N, S, S)
    alpha = 1.0 / (1.0 + np.exp(-(border - rho) / 0.06))  # soft edge
    # ---- the lesion's colour: brown, darker inside, blotches of dark brown / blue-grey growing with severity
    base = np.array([0.50, 0.32, 0.20])[None, :] * rng.uniform(0.8, 1.1, (n, 1))  # (N, 3)
    depth = np.clip(1.0 - rho / np.maximum(border, 1e-3), 0.0, 1.0)  # (N, S, S), 1 at the centre
    lesion = base[:, :, None, None] * (1.0 - 0.3 * depth[:, None])  # (N, 3, S, S)
    blotch_colors = np.array([[0.18, 0.11, 0.09], [0.33, 0.38, 0.48]])
    for _ in range(3):
        ang, rad = rng.uniform(0, 2 * np.pi, n), rng.uniform(0.0, 0.6, n) * r0
        by, bx = cy + rad * np.sin(ang), cx + rad * np.cos(ang)
        sigma = r0 * rng.uniform(0.25, 0.45, n)
        blob = np.exp(-((yy[None] - col(by)) ** 2 + (xx[None] - col(bx)) ** 2) / (2 * col(sigma) ** 2))
        weight = col(
            s * rng.uniform(0.6, 1.0, n) * (rng.random(n) < 0.25 + 0.75 * s)
        )  # more blotches when severe
        color = blotch_colors[rng.integers(0, 2, n)]  # (N, 3)
        w = np.clip(weight * blob, 0, 1)[:, None]  # (N, 1, S, S)
        lesion = lesion * (1 - w) + color[:, :, None, None] * w
    # ---- skin: tone, illumination gradient, vignette
    skin_rgb = np.array([0.86, 0.66, 0.56]) - tone * np.array([0.16, 0.14, 0.10])
    skin = skin_rgb[None, :] * rng.uniform(0.92, 1.05, (n, 1))  # (N, 3)
    g_ang = rng.uniform(0, 2 * np.pi, n)
    light = 1.0 + (0.10 + 0.05 * tone) * (xx[None] * col(np.cos(g_ang)) + yy[None] * col(np.sin(g_ang)))
    vignette = 1.0 - col(rng.uniform(0.0, 0.5, n)) * np.clip(np.hypot(xx, yy)[None] * 2 - 0.75, 0, None) ** 2
    image = skin[:, :, None, None] * (light * vignette)[:, None]  # (N, 3, S, S)
    image = image * (1 - alpha[:, None]) + lesion * (light * vignette)[:, None] * alpha[:, None]
    # ---- hairs: thin dark curves, independent of the class
    n_hairs = rng.poisson(hairs, n)
    hair_rgb = np.array([0.16, 0.11, 0.09])[None, :, None, None]
    for h in range(int(n_hairs.max()) if n else 0):
        on = col((n_hairs > h).astype(np.float64))
        a = rng.uniform(0, np.pi, n)
        off = rng.uniform(-0.45, 0.45, n)
        bend = rng.uniform(-0.8, 0.8, n)
        along = xx[None] * col(np.cos(a)) + yy[None] * col(np.sin(a))
        across = -xx[None] * col(np.sin(a)) + yy[None] * col(np.cos(a)) - col(off) - col(bend) * along**2
        width = 0.7 / size
        w = on * np.exp(-((across / width) ** 2)) * 0.85  # (N, S, S)
        image = image * (1 - w[:, None]) + hair_rgb * w[:, None]
    image = image + rng.normal(0.0, 0.02, image.shape)
    data = torch.from_numpy(np.clip(np.round(image * 255), 0, 255).astype(np.uint8))
    return DMLDataset(
        data,
        labels,
        class_ids=np.arange(len(counts)),
        class_names=list(class_names) if class_names is not None else None,
        meta={"mask": mask, "severity": s.astype(np.float32)},
        name="lesions",
    )

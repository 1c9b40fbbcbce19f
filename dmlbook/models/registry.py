"""Build a model by name: ``build_model("small_cnn", in_channels=1, embedding_dim=64)``.

Each name maps to a builder and the kind of input it takes: ``"features"`` models need ``in_dim`` (a
(B, in_dim) batch of precomputed features), ``"images"`` models take ``in_channels`` (a (B, C, H, W) batch).
New architectures (e.g. the planned MobileNetV2 in ``mobilenet.py``) call :func:`register_model` at import
and are imported by ``dmlbook/models/__init__.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from .backbones import NOT_IN_TORCHVISION, Backbone
from .heads import EmbeddingHead
from .small_cnn import SmallCNN

InputKind = Literal["features", "images"]


#: build_model's own arguments, never passed on as keyword arguments of a model's constructor
_OWN_ARGUMENTS = ("in_dim", "in_channels")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``builder(in_dim=...|in_channels=..., [embedding_dim=...], **kwargs)``.

    ``accepts``: the callable whose keyword arguments ``builder`` passes on through ``**kwargs`` (the model's
    class), used to check and list the keyword arguments a model takes; ``None``: the builder's own signature.
    """

    builder: Callable[..., nn.Module]
    input: InputKind
    description: str = ""
    accepts: Callable[..., Any] | None = None

    def arguments(self) -> list[str] | None:
        """The keyword arguments the model takes (sorted), or None when they cannot be known (a builder with
        ``**kwargs`` and no ``accepts``)."""
        names: set[str] = set()
        for target in (self.builder, self.accepts):
            if target is None:
                continue
            params = inspect.signature(target).parameters.values()
            names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                return sorted(names - set(_OWN_ARGUMENTS))
        return None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    input: InputKind,
    description: str = "",
    accepts: Callable[..., Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Add ``name`` to :func:`build_model`. ``builder`` gets ``in_dim`` (input="features") or ``in_channels``
    (input="images", possibly None for the model's default), ``embedding_dim`` when given, and the extra
    kwargs. A builder that passes ``**kwargs`` on to a class names it in ``accepts`` (bind the arguments the
    builder supplies itself with :func:`functools.partial`), so that a wrong keyword argument is refused with
    the list of the right ones."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str; got {name!r}")
    if not callable(builder):
        raise TypeError(f"builder must be callable; got {type(builder).__name__}")
    if input not in ("features", "images"):
        raise ValueError(f"input must be 'features' or 'images'; got {input!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered (pass overwrite=True to replace it)")
    if accepts is not None and not callable(accepts):
        raise TypeError(f"accepts must be callable (the model's class); got {type(accepts).__name__}")
    _REGISTRY[name] = ModelEntry(builder, input, description, accepts)


def available_models() -> dict[str, str]:
    """Registered names and their one-line descriptions."""
    return {name: entry.description for name, entry in _REGISTRY.items()}


def model_arguments(name: str) -> list[str] | None:
    """The keyword arguments :func:`build_model` passes to model ``name`` (besides ``in_dim``/``in_channels``),
    or None where the registration does not say."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in _REGISTRY)}; got {name!r}")
    return _REGISTRY[name].arguments()


def _check_arguments(name: str, entry: ModelEntry, kwargs: dict[str, Any]) -> None:
    accepted = entry.arguments()
    unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
    if unknown:
        raise TypeError(
            f"model {name!r} does not take {', '.join(map(repr, unknown))}; it accepts: "
            f"{', '.join(accepted) or '(no keyword arguments)'}"
        )


def _call_builder(name: str, entry: ModelEntry, **kwargs: Any) -> nn.Module:
    """``entry.builder(**kwargs)``; a keyword argument the model does not take gives a TypeError naming it and,
    where known, the ones it takes (instead of a TypeError from deep inside a constructor)."""
    _check_arguments(name, entry, {k: v for k, v in kwargs.items() if k not in _OWN_ARGUMENTS})
    try:
        return entry.builder(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise TypeError(
            f"model {name!r}: {err} (its registration does not list the arguments it accepts; "
            "see the model's class)"
        ) from err


def build_model(
    name: str,
    *,
    in_dim: int | None = None,
    in_channels: int | None = None,
    embedding_dim: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered embedding model; ``forward(x) -> (B, embedding_dim)``.

    Args:
        name: one of :func:`available_models`: ``mlp``, ``linear``, ``small_cnn``, ``resnet50``,
            ``googlenet``, ``mobilenet_v2`` (kwargs ``pretrained=True|path``, ``attention_after=(stages)``).
        in_dim: feature dimension, required by the feature models (``mlp``, ``linear``), refused by others.
        in_channels: image channels for the image models (default: the model's own, 1 for ``small_cnn``,
            3 for the ImageNet backbones, which accept nothing else).
        embedding_dim: output dimension (default: the model's own: 128 for heads, 64 for ``small_cnn``,
            512 for backbones).
        **kwargs: passed to the model's constructor (e.g. ``attention=True``, ``hidden_dims=(256,)``,
            ``pretrained=False``).
    """
    if isinstance(name, str) and name in NOT_IN_TORCHVISION:
        raise ValueError(f"{NOT_IN_TORCHVISION[name]}; valid names: {', '.join(_REGISTRY)}")
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in _REGISTRY)}; got {name!r}")
    entry = _REGISTRY[name]
    if embedding_dim is not None:
        kwargs["embedding_dim"] = embedding_dim
    if entry.input == "features":
        if in_dim is None:
            raise ValueError(f"build_model({name!r}) needs in_dim, the dimension of the input features")
        if in_channels is not None:
            raise ValueError(
                f"{name!r} takes feature vectors (in_dim), not images; got in_channels={in_channels}"
            )
        return _call_builder(name, entry, in_dim=in_dim, **kwargs)
    if in_dim is not None:
        raise ValueError(f"{name!r} takes images (in_channels), not feature vectors; got in_dim={in_dim}")
    return _call_builder(name, entry, in_channels=in_channels, **kwargs)


def _linear(*, in_dim: int, **kwargs: Any) -> nn.Module:
    if "hidden_dims" in kwargs:
        raise TypeError(
            "'linear' is a single projection and takes no hidden_dims; use 'mlp' for hidden layers"
        )
    return EmbeddingHead(in_dim, **kwargs)


def _small_cnn(*, in_channels: int | None, **kwargs: Any) -> nn.Module:
    return SmallCNN(1 if in_channels is None else in_channels, **kwargs)


def _backbone(name: str) -> Callable[..., nn.Module]:
    def build(*, in_channels: int | None, **kwargs: Any) -> nn.Module:
        if in_channels not in (None, 3):
            raise ValueError(
                f"{name!r} is an ImageNet (RGB) network: in_channels must be 3; got {in_channels}"
            )
        return Backbone(name, **kwargs)

    return build


register_model(
    "mlp",
    lambda *, in_dim, **kw: EmbeddingHead(in_dim, **kw),
    input="features",
    description="EmbeddingHead: MLP on precomputed features (hidden_dims=...)",
    accepts=EmbeddingHead,
)
register_model(
    "linear",
    _linear,
    input="features",
    description="EmbeddingHead with no hidden layer: a linear projection of features",
    accepts=EmbeddingHead,  # hidden_dims gets _linear's own message
)
register_model(
    "small_cnn",
    _small_cnn,
    input="images",
    description="SmallCNN: 3-4 conv stages for 28-64 px images, optional mixed attention",
    accepts=SmallCNN,
)
for _name in ("resnet50", "googlenet"):
    register_model(
        _name,
        _backbone(_name),
        input="images",
        description=f"torchvision {_name} + linear embedding (needs torchvision)",
        accepts=functools.partial(Backbone, _name),
    )

__all__ = ["ModelEntry", "available_models", "build_model", "model_arguments", "register_model"]

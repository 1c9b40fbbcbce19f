"""What the tuner searches: one declarative table of per-loss hyper-parameter ranges, plus the learning rate.

Every loss is tuned over its own hyper-parameters (margins, scales, temperatures, OSM's λ and σ, ...) and the
learning rate, each a float drawn uniformly or on a log scale. The ranges follow the search spaces of
Musgrave, Belongie & Lim, *A Metric Learning Reality Check* (ECCV 2020): wide enough to hold each paper's
recommended value and the library default, on a log scale where a parameter acts multiplicatively (scales,
temperatures, the learning rate). Distances are between unit vectors, so every distance margin lies in
``[0, 2]``.

A :class:`Param` whose name is a field of :class:`~dmlbook.train.TrainConfig` (``lr``, ``weight_decay``,
``loss_lr_mult``, ...) sets that field; every other name is a keyword argument of the loss
(``TrainConfig.loss_args``). :func:`configure` applies a trial's values to a config.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._checks import check_float

#: The learning rate is searched a factor of ``10 ** LR_DECADES`` either side of the config's own rate.
LR_DECADES = 1.0


@dataclass(frozen=True)
class Param:
    """One tuned hyper-parameter: a float in ``[low, high]``, uniform or (``log=True``) log-uniform.

    Attributes:
        name: a loss constructor argument (``margin``), or a :class:`~dmlbook.train.TrainConfig` field
            (``lr``).
        low, high: the range (``low < high``; ``low > 0`` on a log scale).
        log: sample ``log(value)`` uniformly (for scales, temperatures, learning rates).
    """

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f"Param.name must be an identifier (a loss argument or a config field); got {self.name!r}"
            )
        low = check_float(self.low, f"{self.name}: low")
        high = check_float(self.high, f"{self.name}: high")
        if not low < high:
            raise ValueError(f"{self.name}: low must be < high; got [{low}, {high}]")
        if self.log and low <= 0:
            raise ValueError(f"{self.name}: a log-scale range needs low > 0; got {low}")

    def suggest(self, trial: Any) -> float:
        """This parameter's value for an Optuna ``trial``."""
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "low": self.low, "high": self.high, "log": self.log}


def _p(name: str, low: float, high: float, log: bool = False) -> Param:
    return Param(name, low, high, log)


#: The search space of each loss (by its :data:`~dmlbook.losses.LOSSES` name), without the learning rate.
#: Musgrave et al.'s ranges where they tuned the same loss (multi-similarity's α, β on [0.01, 100] log and
#: base on [0, 1]; margins over the whole useful distance range), else a range around the paper's value.
SPACES: dict[str, tuple[Param, ...]] = {
    # Hadsell et al. 2006: pull positives inside pos_margin, push negatives beyond neg_margin
    "contrastive": (_p("pos_margin", 0.0, 0.5), _p("neg_margin", 0.2, 1.8)),
    # Schroff et al. 2015: margin between the positive and the negative distance
    "triplet": (_p("margin", 0.005, 1.0, log=True),),
    # Wang et al. 2019: α, β the positive / negative sharpness, base the similarity threshold
    "multi_similarity": (
        _p("alpha", 0.01, 100.0, log=True),
        _p("beta", 0.01, 100.0, log=True),
        _p("base", 0.0, 1.0),
    ),
    # Oh Song et al. 2016
    "lifted": (_p("neg_margin", 0.2, 1.8), _p("pos_margin", 0.0, 0.5)),
    # Wang et al. (RLL, TPAMI): m the gap between the boundaries, α the negative boundary, T_n the negatives'
    # temperature
    "ranked_list": (_p("margin", 0.1, 1.0), _p("alpha", 0.6, 1.8), _p("Tn", 1.0, 100.0, log=True)),
    # Wang et al. (OSM + CAA, AAAI 2019): σ of the positive soft mining, the negative margin α and λ, the
    # weight of the negative part
    "osm": (_p("sigma_osm", 0.2, 2.0, log=True), _p("margin", 0.6, 2.0), _p("lam", 0.1, 0.95)),
    "osm_caa": (_p("sigma_osm", 0.2, 2.0, log=True), _p("margin", 0.6, 2.0), _p("lam", 0.1, 0.95)),
    # Sohn 2016: no hyper-parameter of its own (only the learning rate is tuned)
    "npairs": (),
    # Wang et al. 2017: the angle bound α in degrees
    "angular": (_p("alpha", 30.0, 55.0),),
    # Khosla et al. 2020
    "supcon": (_p("temperature", 0.01, 1.0, log=True),),
    # Gong et al. 2019 (centre-based structured loss): the centre terms' weights and margins
    "centre": (
        _p("intra_weight", 0.001, 0.1, log=True),
        _p("inter_weight", 0.001, 0.1, log=True),
        _p("inter_margin", 0.5, 4.0),
        _p("neg_margin", 0.4, 1.8),
    ),
    # He et al. (DeMAL-CNN): the triplet margin and the weight of the cross-entropy
    "demal": (_p("margin", 0.02, 1.0, log=True), _p("ce_weight", 0.1, 10.0, log=True)),
    # Kim et al. 2020
    "proxy_anchor": (_p("margin", 0.0, 0.5), _p("alpha", 4.0, 128.0, log=True)),
    # Movshovitz-Attias et al. 2017 (the scale of the softmax over proxy distances)
    "proxy_nca": (_p("softmax_scale", 0.5, 64.0, log=True),),
    # Zhai & Wu 2019
    "normalized_softmax": (_p("temperature", 0.01, 1.0, log=True),),
    # Deng et al. 2019: the additive angular margin in radians (0.05-0.8 rad is about 3-46 degrees)
    "arcface": (_p("margin", 0.05, 0.8), _p("scale", 4.0, 128.0, log=True)),
    # Wang et al. 2018
    "cosface": (_p("margin", 0.05, 0.6), _p("scale", 4.0, 128.0, log=True)),
    # Qian et al. 2019 (centers_per_class stays at its default: it changes the number of parameters)
    "soft_triple": (_p("la", 1.0, 100.0, log=True), _p("gamma", 0.01, 1.0, log=True), _p("margin", 0.0, 0.5)),
}


def known_losses() -> tuple[str, ...]:
    """The loss names with a search space, sorted."""
    return tuple(sorted(SPACES))


def lr_param(lr: float, *, lr_range: tuple[float, float] | None = None) -> Param:
    """The learning rate's :class:`Param`: ``lr_range``, else a decade either side of ``lr`` (log scale)."""
    if lr_range is None:
        lr = check_float(lr, "lr", minimum=0.0, exclusive_minimum=True)
        factor = 10.0**LR_DECADES
        return Param("lr", lr / factor, lr * factor, log=True)
    if not isinstance(lr_range, Sequence) or isinstance(lr_range, str) or len(lr_range) != 2:
        raise TypeError(f"lr_range must be a (low, high) pair of floats; got {lr_range!r}")
    return Param("lr", float(lr_range[0]), float(lr_range[1]), log=True)


def search_space(
    loss: str, *, lr: float = 1e-3, lr_range: tuple[float, float] | None = None
) -> tuple[Param, ...]:
    """The parameters tuned for ``loss``: its row of :data:`SPACES`, then the learning rate
    (:func:`lr_param`).

    Raises ValueError for a loss without a search space, listing the known ones.
    """
    if not isinstance(loss, str) or loss not in SPACES:
        raise ValueError(
            f"no search space for loss {loss!r}; the known losses are: {', '.join(known_losses())} "
            "(or pass space= with your own Param tuple)"
        )
    return (*SPACES[loss], lr_param(lr, lr_range=lr_range))


def check_space(space: Any) -> tuple[Param, ...]:
    """``space`` as a tuple of :class:`Param` with distinct names (TypeError / ValueError otherwise)."""
    if isinstance(space, Param) or not isinstance(space, Sequence) or isinstance(space, str):
        raise TypeError(f"space must be a sequence of Param; got {type(space).__name__}")
    space = tuple(space)
    bad = [type(p).__name__ for p in space if not isinstance(p, Param)]
    if bad:
        raise TypeError(f"space must contain only Param objects; got {', '.join(bad)}")
    names = [p.name for p in space]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"space names a parameter more than once: {duplicated}")
    return space


def configure(config: Any, params: Mapping[str, float]) -> Any:
    """A copy of ``config`` (a :class:`~dmlbook.train.TrainConfig`) with a trial's ``params`` applied: a name
    that is a config field sets that field, every other name goes into ``loss_args`` (over the config's
    own)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a TrainConfig (a dataclass instance); got {type(config).__name__}")
    fields = {f.name for f in dataclasses.fields(config)}
    if "loss_args" in params:
        raise ValueError("params cannot set loss_args as a whole; name the loss's arguments one by one")
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"params[{name!r}] must be a finite number; got {value!r}")
    own = {k: v for k, v in params.items() if k in fields}
    loss_args = {**getattr(config, "loss_args", {}), **{k: v for k, v in params.items() if k not in fields}}
    return dataclasses.replace(config, **own, loss_args=loss_args)


__all__ = [
    "LR_DECADES",
    "SPACES",
    "Param",
    "check_space",
    "configure",
    "known_losses",
    "lr_param",
    "search_space",
]

"""Retrieval and clustering metrics for embeddings (Recall@K, R-Precision, MAP@R, NMI) on exact k-NN.

* :mod:`~dmlbook.evaluation.metrics`: the protocol and the metrics: :func:`evaluate` (leave-one-out, the
  standard deep-metric-learning protocol), :func:`evaluate_query_gallery` (separate query and gallery sets),
  :func:`retrieval_metrics`, :func:`count_relevant`, :func:`kmeans_nmi`; definitions in its docstring (MAP@R
  from Musgrave, Belongie and Lim, "A Metric Learning Reality Check", ECCV 2020).
* :mod:`~dmlbook.evaluation.neighbours`: exact k nearest neighbours (:func:`knn`), with a chunked torch
  backend (pair distances computed once when leaving one out, candidate pre-selection) and a faiss one.

Every public name is importable from here: ``from dmlbook.evaluation import evaluate, knn``.
"""

from __future__ import annotations

from .metrics import count_relevant, evaluate, evaluate_query_gallery, kmeans_nmi, retrieval_metrics
from .neighbours import BACKENDS, DEFAULT_CHUNK_BYTES, knn

__all__ = [
    "BACKENDS",
    "DEFAULT_CHUNK_BYTES",
    "count_relevant",
    "evaluate",
    "evaluate_query_gallery",
    "kmeans_nmi",
    "knn",
    "retrieval_metrics",
]

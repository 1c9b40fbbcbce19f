"""The book: execute ``notebooks/NN_name.ipynb`` with papermill, plus the helpers a notebook calls.

Command line (see ``notebooks/README.md``)::

    python -m dmlbook book [--params ci|default|real|full] [--only NN [NN ...]] [--out DIR]
                           [--notebooks-dir DIR] [--kernel NAME]

Each notebook runs in its own folder ``DIR/NN_name/`` (executed ``.ipynb``, ``.html``, ``figures/`` and the
``metrics.json`` the notebook writes through its ``out_dir`` parameter); a summary table follows, and the exit
status is 1 if any notebook failed (2 for a usage or configuration error).

Two functions are meant for the notebooks themselves:

* :func:`notebook_parameters` goes in the cell after the ``parameters`` cell and stops the notebook with a
  :class:`ParameterError` when a value has the wrong type or an override names an undeclared parameter,
  also when the notebook is run by plain ``papermill`` (which only warns);
* :func:`save_metrics` writes the headline numbers to ``out_dir/metrics.json``.

Only the standard library is imported at module level, so notebooks can import this package cheaply; papermill,
nbconvert, jupyter_client and PyYAML are imported when the runner needs them.

Modules: :mod:`~dmlbook.book.params` (parameter types, the notebook-side guard, parameter sets and their checks),
:mod:`~dmlbook.book.metrics` (:func:`save_metrics`), :mod:`~dmlbook.book.kernels` (the kernel, over IPC),
:mod:`~dmlbook.book.runner` (data requirements, executing the notebooks, the summary) and
:mod:`~dmlbook.book.cli` (``python -m dmlbook book``).
"""

from __future__ import annotations

from .cli import absolute_data_home, main
from .kernels import current_python_kernel_manager, ipc_kernel_manager
from .metrics import save_metrics
from .params import (
    DEFAULT_SET,
    RUNNER_SET,
    BookConfigError,
    ParameterError,
    ParamSet,
    available_param_sets,
    check_common,
    check_parameter,
    declared_parameters,
    load_param_set,
    notebook_parameters,
    resolve_parameters,
)
from .runner import (
    DATA_HELP,
    NOTEBOOK_GLOB,
    NOTEBOOKS_DIR,
    OUT_DIR,
    REPO_ROOT,
    Result,
    data_root,
    execute_notebook,
    find_notebooks,
    flatten_metrics,
    format_summary,
    missing_data,
    missing_data_message,
    run_book,
    select_notebooks,
)

__all__ = [
    "DATA_HELP",
    "DEFAULT_SET",
    "NOTEBOOKS_DIR",
    "NOTEBOOK_GLOB",
    "OUT_DIR",
    "REPO_ROOT",
    "RUNNER_SET",
    "BookConfigError",
    "ParamSet",
    "ParameterError",
    "Result",
    "absolute_data_home",
    "available_param_sets",
    "check_common",
    "check_parameter",
    "current_python_kernel_manager",
    "data_root",
    "declared_parameters",
    "execute_notebook",
    "find_notebooks",
    "flatten_metrics",
    "format_summary",
    "ipc_kernel_manager",
    "load_param_set",
    "main",
    "missing_data",
    "missing_data_message",
    "notebook_parameters",
    "resolve_parameters",
    "run_book",
    "save_metrics",
    "select_notebooks",
]

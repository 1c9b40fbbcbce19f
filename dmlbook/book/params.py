"""Notebook parameters: their types, the notebook-side guard and the parameter sets (``notebooks/params/NAME.yaml``).

The runner checks every override against the types a notebook declares before it runs it
(:func:`load_param_set`, :func:`check_common`, :func:`resolve_parameters`); inside the notebook,
:func:`notebook_parameters` checks the values again and rejects any name papermill injected that the
``parameters`` cell does not declare, also when the notebook is run by plain ``papermill`` (which only warns).
Only the standard library is imported at module level; papermill and PyYAML when a function needs them.
"""

from __future__ import annotations

import ast
import difflib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SET = "default"
RUNNER_SET = frozenset({"out_dir"})  # parameters the runner sets itself

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
_PAPERMILL_HEADER = "# Parameters"  # first line of the cell papermill injects (tag "injected-parameters")


class ParameterError(ValueError):
    """A notebook parameter is unknown or has the wrong type."""


class BookConfigError(ValueError):
    """A params file, ``--only`` selection or data requirement is malformed."""


# --------------------------------------------------------------------------------------------------------
# Parameter types: shared by the runner (before execution) and the notebook (at run time)
# --------------------------------------------------------------------------------------------------------


def _type_name(expected: type) -> str:
    return getattr(expected, "__name__", str(expected))


def check_parameter(name: str, value: Any, expected: type, *, where: str = "") -> Any:
    """Return ``value`` if it is an instance of ``expected``; an int is accepted for (and made) a float.

    ``bool`` is never accepted for ``int``/``float`` nor the reverse. ``where`` prefixes the error message
    (e.g. the notebook name). Raises :class:`ParameterError` naming the parameter and both types.
    """
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    is_bool_mismatch = isinstance(value, bool) != (expected is bool) and expected in (int, float, bool)
    if is_bool_mismatch or not isinstance(value, expected):
        prefix = f"{where}: " if where else ""
        raise ParameterError(
            f"{prefix}parameter {name!r} must be {_type_name(expected)} (as declared); "
            f"got {value!r} of type {type(value).__name__}"
        )
    return value


def _resolve_annotation(name: str, annotation: Any) -> type:
    """A type from a parameters-cell annotation (a type, a union, or its name as a string)."""
    if isinstance(annotation, str):
        if annotation not in _TYPES:
            raise ParameterError(
                f"parameter {name!r}: annotation {annotation!r} is not one of {', '.join(_TYPES)}"
            )
        return _TYPES[annotation]
    origin = typing.get_origin(annotation)
    return origin if origin in (list, dict, tuple) else annotation  # list[int] -> list


def _unknown_hint(name: str, declared: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; declared parameters: {', '.join(sorted(declared)) or '(none)'}"


# --------------------------------------------------------------------------------------------------------
# Helpers called from inside a notebook
# --------------------------------------------------------------------------------------------------------


def _injected_names(history: Sequence[str]) -> list[str]:
    """Names assigned by the last cell papermill injected, found in IPython's input history (``_ih``)."""
    for source in reversed(list(history)):
        lines = source.strip().splitlines()
        if not lines or lines[0].strip() != _PAPERMILL_HEADER:
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        if body and all(isinstance(s, ast.Assign) for s in body):
            return [t.id for s in body for t in s.targets if isinstance(t, ast.Name)]
    return []


def notebook_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """Check the notebook's parameters and return them as a dict (in declaration order).

    Call it as ``params = notebook_parameters(globals())`` in the cell right after the ``parameters``
    cell. The declared parameters are the annotated assignments of that cell (``epochs: int = 3  # help``),
    which IPython records in ``__annotations__``. Each current value must match its annotation (ints are
    turned into floats in ``namespace`` for ``float`` parameters), and every name in papermill's
    injected-parameters cell must be declared. Raises :class:`ParameterError` otherwise, which stops the
    notebook.
    """
    annotations = namespace.get("__annotations__") or {}
    if not annotations:
        raise ParameterError(
            "no declared parameters: the cell tagged 'parameters' must use annotated literals, "
            "e.g. `epochs: int = 3  # training epochs`"
        )
    unknown = [n for n in _injected_names(namespace.get("_ih", ())) if n not in annotations]
    if unknown:
        raise ParameterError(
            f"unknown parameter {unknown[0]!r} was passed{_unknown_hint(unknown[0], list(annotations))}"
        )
    params: dict[str, Any] = {}
    for name, annotation in annotations.items():
        if name not in namespace:
            raise ParameterError(
                f"parameter {name!r} is annotated but has no value: write `{name}: T = value`"
            )
        value = check_parameter(name, namespace[name], _resolve_annotation(name, annotation))
        namespace[name] = params[name] = value
    return params


# --------------------------------------------------------------------------------------------------------
# Parameter sets (notebooks/params/NAME.yaml)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSet:
    """A parsed params file: ``common`` overrides, per-notebook overrides and data requirements."""

    name: str
    source: Path | None
    common: dict[str, Any] = field(default_factory=dict)
    per_notebook: dict[str, dict[str, Any]] = field(default_factory=dict)
    requires: dict[str, list[str]] = field(default_factory=dict)


def available_param_sets(notebooks_dir: Path) -> list[str]:
    """``default`` plus the stem of every ``params/*.yaml``."""
    names = {p.stem for p in (notebooks_dir / "params").glob("*.yaml")}
    return [DEFAULT_SET, *sorted(names - {DEFAULT_SET})]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BookConfigError(f"{where} must be a mapping of name: value; got {type(value).__name__}")
    return value


def _requires(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BookConfigError(f"{where}.requires must be a list of dataset folder names; got {value!r}")
    for name in value:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BookConfigError(
                f"{where}.requires: {name!r} must be a folder name relative to the data root"
            )
    return list(value)


def load_param_set(name: str, notebooks_dir: Path, stems: Sequence[str]) -> ParamSet:
    """Read ``notebooks_dir/params/NAME.yaml`` and check its structure against the notebook ``stems``.

    ``default`` needs no file (no overrides); a ``default.yaml``, if present, may hold only ``requires``.
    Raises :class:`BookConfigError` for a missing file, a section that names no notebook, or a bad shape.
    """
    path = notebooks_dir / "params" / f"{name}.yaml"
    if not path.exists():
        if name == DEFAULT_SET:
            return ParamSet(name=name, source=None)
        choices = ", ".join(available_param_sets(notebooks_dir))
        raise BookConfigError(f"--params {name!r}: no file {path}; available: {choices}")
    import yaml

    raw = _mapping(yaml.safe_load(path.read_text()), str(path))
    common = _mapping(raw.pop("common", None), f"{path}: common")
    if "requires" in common:
        raise BookConfigError(f"{path}: common: `requires` belongs in a notebook's own section")
    per_notebook: dict[str, dict[str, Any]] = {}
    requires: dict[str, list[str]] = {}
    for stem, section in raw.items():
        where = f"{path}: {stem}"
        if stem not in stems:
            raise BookConfigError(
                f"{where}: no notebook {stem}.ipynb in {notebooks_dir}; notebooks: "
                f"{', '.join(stems) or '(none)'}"
            )
        section = dict(_mapping(section, where))
        if "requires" in section:
            requires[stem] = _requires(section.pop("requires"), where)
        per_notebook[stem] = section
    if name == DEFAULT_SET and (common or any(per_notebook.values())):
        raise BookConfigError(
            f"{path}: the default set runs the notebooks' own values, so it may only "
            "hold `requires:` lists; put overrides in another params file"
        )
    return ParamSet(name=name, source=path, common=common, per_notebook=per_notebook, requires=requires)


def declared_parameters(nb_path: Path) -> dict[str, type]:
    """The parameters a notebook declares (papermill's view of its ``parameters`` cell) with their types.

    A parameter without annotation gets the type of its default literal; an annotation other than int, float,
    str, bool, list or dict (e.g. ``str | None``) accepts any value here and is checked in the notebook.
    """
    import papermill

    declared: dict[str, type] = {}
    for name, info in papermill.inspect_notebook(str(nb_path)).items():
        type_name = info["inferred_type_name"]
        if type_name in _TYPES:
            declared[name] = _TYPES[type_name]
        elif type_name != "None":  # e.g. "str | None": left to the notebook's own guard
            declared[name] = object
        else:
            declared[name] = _literal_type(info["default"])
    return declared


def _literal_type(source: str) -> type:
    """The type of an unannotated default literal; ``object`` (anything goes) for None or an expression."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return object
    return object if value is None else type(value)


def _declared_if_readable(nb_path: Path) -> dict[str, type]:
    """:func:`declared_parameters`, or nothing for a notebook that cannot be read (it fails when it runs)."""
    try:
        return declared_parameters(nb_path)
    except Exception:  # noqa: BLE001
        return {}


def check_common(param_set: ParamSet, notebooks: Sequence[Path]) -> None:
    """Every name in the ``common`` section must be declared by at least one of ``notebooks`` (all the book's
    chapters, not only those selected): ``common`` applies each name where it is declared, so a misspelt one
    would otherwise apply nowhere, silently. ``out_dir`` is the runner's. Raises :class:`BookConfigError`."""
    if not param_set.common:
        return
    where = f"{param_set.source}: common" if param_set.source else "common"
    for name in param_set.common:
        if name in RUNNER_SET:
            raise BookConfigError(
                f"{where}: {name!r} is set by the runner (--out); remove it from the params file"
            )
    declared = sorted({name for nb in notebooks for name in _declared_if_readable(nb)} - RUNNER_SET)
    unknown = [name for name in param_set.common if name not in declared]
    if unknown:
        raise BookConfigError(
            f"{where}: unknown parameter {unknown[0]!r}: no notebook declares it"
            f"{_unknown_hint(unknown[0], declared)}"
        )


def resolve_parameters(nb_path: Path, param_set: ParamSet, out_dir: Path) -> dict[str, Any]:
    """The overrides for one notebook: ``common`` (declared names only), its own section, and ``out_dir``.

    Raises :class:`ParameterError` for an undeclared name in the notebook's section, a value whose type
    differs from the declared one, a section that sets ``out_dir``, or a notebook without ``out_dir``.
    """
    stem = nb_path.stem
    declared = declared_parameters(nb_path)
    if "out_dir" not in declared:
        raise ParameterError(
            f"{stem}: the parameters cell must declare `out_dir: str = ...` "
            f"(the runner points it at the notebook's output folder)"
        )
    source = f"params/{param_set.source.name}" if param_set.source else "default"
    where = f"{stem} ({source})"
    own = param_set.per_notebook.get(stem, {})
    for name in own:
        if name in RUNNER_SET:
            raise ParameterError(
                f"{where}: {name!r} is set by the runner (--out); remove it from the params file"
            )
        if name not in declared:
            raise ParameterError(f"{where}: unknown parameter {name!r}{_unknown_hint(name, list(declared))}")
    merged = {k: v for k, v in param_set.common.items() if k in declared and k not in RUNNER_SET} | own
    params = {k: check_parameter(k, v, declared[k], where=where) for k, v in merged.items()}
    return params | {"out_dir": str(out_dir)}

"""Class weights for the cross entropies: the `class_weight` param, and the weight vector it gives.

`class_weight` is None (every class weighs 1), "balanced", or a table ``{class = weight}`` whose keys are
class names as the dataset names them (``malignant = 2.0``) or class indices as strings (``1 = 2.0``);
classes the table leaves out weigh 1. "balanced" gives class c the weight n / (k · n_c) over the n samples
and k classes of the training split, as scikit-learn's `compute_class_weight("balanced")`: the classes then
weigh the same in total, (n / (k · n_c)) · n_c = n / k each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, WithJsonSchema, WrapValidator
from pydantic_core import PydanticCustomError

from framework.components import Array
from framework.errors import ConfigError

_TABLE = TypeAdapter(dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]])


def _validate(value: Any, handler: Any) -> Any:
    # One readable error per problem, at `class_weight.<key>`: pydantic's own union validation would report
    # every alternative (dict, literal, None) with its type in the key path.
    if value is None or value == "balanced":
        return value
    if isinstance(value, Mapping):
        # YAML reads `{0: 1.0}` with integer keys; TOML and JSON keys are strings already.
        return _TABLE.validate_python({str(k): v for k, v in value.items()})
    raise PydanticCustomError(
        "class_weight", 'expected "balanced" or a table of weights by class, such as {0 = 1.0, 1 = 3.0}'
    )


_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
        {"const": "balanced", "type": "string"},
        {"type": "null"},
    ]
}

ClassWeight = Annotated[
    dict[str, float] | Literal["balanced"] | None, WrapValidator(_validate), WithJsonSchema(_SCHEMA)
]
"""The type of the `class_weight` param: validated by `_validate` (weights > 0), described by `_SCHEMA`."""

CLASS_WEIGHT_HELP = (
    'Weight of each class in the loss: none (all 1), "balanced" (n / (k·n_c) from the training split, as '
    "scikit-learn), or a table {class = weight > 0} by class name or index (classes left out weigh 1)."
)


def balanced(labels: Array, classes: Sequence[str], key: str) -> Array:
    """n / (k · n_c) for each class c of the k `classes`, counted in the integer `labels` (n of them)."""
    counts = np.bincount(np.asarray(labels, dtype=np.intp).ravel(), minlength=len(classes))[: len(classes)]
    if np.any(counts == 0):
        missing = classes[int(np.flatnonzero(counts == 0)[0])]
        raise ConfigError(
            f"{key}: 'balanced' needs every class in the training split, class {missing!r} has no sample; "
            "help: give the weights as a table, {class = weight}"
        )
    return np.asarray(len(labels) / (len(classes) * counts), dtype=np.float64)


def table(weights: Mapping[str, float], classes: Sequence[str], key: str) -> Array:
    """The weight of each class from a table keyed by class name or index (as a string); missing ones are 1.

    A key that is the name of one class and the index of another (classes named "1" and "2": is "1" the
    first class or the second?) is refused rather than guessed.
    """
    by_name = {name: i for i, name in enumerate(classes)}
    by_index = {str(i): i for i in range(len(classes))}
    vector = np.ones(len(classes), dtype=np.float64)
    given: dict[int, str] = {}
    for name, weight in weights.items():
        index = by_name.get(name)
        as_index = by_index.get(name)
        if index is not None and as_index is not None and as_index != index:
            raise ConfigError(
                f"{key}.{name}: ambiguous, {name!r} names class {index} and is also the index of class "
                f"{classes[as_index]!r}; help: key class {index} by its index {str(index)!r}, and class "
                f"{classes[as_index]!r} by its name"
            )
        index = index if index is not None else as_index
        if index is None:
            shown = ", ".join(repr(c) for c in classes[:12]) + (", ..." if len(classes) > 12 else "")
            raise ConfigError(
                f"{key}.{name}: unknown class {name!r}; the classes are {shown} (or their indices 0.."
                f"{len(classes) - 1})"
            )
        if index in given:
            raise ConfigError(f"{key}.{name}: class {classes[index]!r} already has a weight (key {given[index]!r})")
        given[index] = name
        vector[index] = weight
    return vector


def class_weights(spec: Any, labels: Array | None, classes: Sequence[str], key: str) -> Array | None:
    """The weight vector (k,) that `spec` (a `ClassWeight`) gives for `classes`, or None for no weighting.

    `labels` (the training split's) are needed for "balanced" only; errors name `key` (`loss.class_weight`).
    """
    if spec is None:
        return None
    if spec == "balanced":
        if labels is None:
            raise ValueError("class_weight = 'balanced' is counted on the training split, which was not given")
        return balanced(labels, classes, key)
    return table(spec, classes, key)

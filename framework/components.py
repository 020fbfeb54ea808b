"""Base classes for everything a plugin can register.

Each component class has a `name` (how experiments refer to it), a docstring that states its rule, and a
pydantic `Params` model (`extra="forbid"`, bounds through `Field`, a description on every field). An
experiment section such as ``[optimizer] name = "momentum"  lr = 0.05`` is validated by that class's
`Params`, then passed to the constructor.

Components are built with ``Cls(params)`` or, from Python, ``Cls(lr=0.1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

# The specs' helpers live in framework/specs.py; plugins and the docs import them from here too.
from framework.specs import ComponentSpec as ComponentSpec
from framework.specs import component_field as component_field
from framework.specs import component_fields as component_fields
from framework.specs import spec_name as spec_name
from framework.specs import spec_params as spec_params
from framework.specs import spec_text as spec_text

if TYPE_CHECKING:
    from framework.sweep import SearchSpace
    from framework.trainer import Trainer

Array = npt.NDArray[Any]
"""A numpy array of floating point values (float32 or float64)."""

Task = Literal["regression", "binary", "multiclass"]
Direction = Literal["min", "max"]


class Params(BaseModel):
    """Base of every component's parameters: unknown keys are errors, assignments are validated."""

    # defer_build: the validators of a component's params are built when first used; a run uses a few of the
    # ~90 registered components, and building them all at import took ~30 ms of a 0.35 s command (issue 15).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, defer_build=True)


AnyParams = Params
"""`Params` under a name that component classes (whose `Params` attribute shadows it) can annotate with."""


class Component:
    """What every registered component has in common."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise TypeError("pass either a Params instance or keyword arguments, not both")
        if params is None:
            params = self.Params(**kwargs)
        elif not isinstance(params, self.Params):
            raise TypeError(f"{type(self).__name__} expects {self.Params.__qualname__}, got {type(params)!r}")
        self.params = params

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({values})"

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Activation(Component):
    """A function applied after a layer's affine map, to a batch z of shape (n, units).

    `forward(z, out)` returns a = f(z); when `out` is given (an array shaped like `z`, never `z` itself),
    writing the result into it and returning it avoids an allocation per batch. `backward(z, a, grad)` returns
    dL/dz given dL/da (`grad`): the vector-Jacobian product (∂a/∂z)ᵀ·grad, which for an element-wise
    activation is f'(z) * grad. It may write into `grad` and return it (the caller owns that buffer). Use
    whichever of `z` and `a` is cheaper. Both must preserve the dtype.

    Most activations are element-wise (`elementwise = True`): each a_ij depends on z_ij alone, so they apply
    to arrays of any shape. One that mixes the elements of a row (softmax) sets `elementwise = False`; its
    `backward` is then a full Jacobian-vector product per row, and it is only ever given 2-D batches.
    """

    kind: ClassVar[str] = "activation"
    is_identity: ClassVar[bool] = False
    """True only for f(z) = z, which layers then skip entirely."""
    elementwise: ClassVar[bool] = True
    """False when an output depends on several inputs of its row (softmax): backward is a Jacobian product."""
    default_init: ClassVar[str] = "glorot_uniform"
    """The weight initialiser that `init = "auto"` picks for a layer with this activation (he_normal for the
    relu family, lecun_normal for selu, glorot_uniform otherwise)."""

    def forward(self, z: Array, out: Array | None = None) -> Array:
        raise NotImplementedError

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        raise NotImplementedError


class Loss(Component):
    """A training objective, averaged over the samples of a batch.

    `value(outputs, targets)` is the mean loss, `gradient(outputs, targets)` its gradient with respect to
    `outputs` (so it already carries the 1/n of the mean); the gradient may live in a buffer that the next
    call reuses, and the layers below may overwrite it during backward. Classification losses take logits and fuse the
    link (softmax/sigmoid) inside for stability; `link(outputs)` maps outputs to predictions (probabilities
    for classification), which is what metrics and `Model.predict` see.

    `prepare_targets(y, n_outputs)` turns a dataset's targets into the array the loss compares with outputs
    (for example one-hot rows); it is called once before training, not per batch.
    """

    kind: ClassVar[str] = "loss"
    tasks: ClassVar[tuple[Task, ...]] = ("regression", "binary", "multiclass")

    def value(self, outputs: Array, targets: Array) -> float:
        raise NotImplementedError

    def gradient(self, outputs: Array, targets: Array) -> Array:
        raise NotImplementedError

    def link(self, outputs: Array) -> Array:
        return outputs

    def per_sample(self, outputs: Array, targets: Array) -> Array | None:
        """The loss of each sample, shape (n,), whose mean is `value()`; None if the loss is no such mean.

        Optional: it lets per-step logging compute many batches' losses in one vectorised call.
        """
        return None

    def value_and_link(self, outputs: Array, targets: Array) -> tuple[float, Array]:
        """`value(outputs, targets)` and `link(outputs)` together; the trainer calls this once per epoch.

        Override it when the two share work (cross_entropy's softmax); the result must equal the two calls.
        """
        return self.value(outputs, targets), self.link(outputs)

    def value_link_and_per_sample(self, outputs: Array, targets: Array) -> tuple[float, Array, Array | None]:
        """`value_and_link` and `per_sample` together; the trainer calls this instead of `value_and_link` when
        a plugin asked for each sample's loss (`Trainer.keep_sample_losses`).

        Override it when they share work (cross_entropy: one softmax); the results must equal the calls.
        """
        value, link = self.value_and_link(outputs, targets)
        return value, link, self.per_sample(outputs, targets)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = np.asarray(y, dtype=dtype)
        return targets.reshape(len(targets), -1)

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        """A reason why a model with `n_outputs` outputs cannot be trained with this loss, or None."""
        return None

    def adapt(self, y: Array, task: Task, classes: Sequence[str]) -> None:
        """Learn what the loss needs from the training split's raw targets, once, before `prepare_targets`.

        Args:
            y: the training split's targets as the dataset gives them (class labels 0..k-1, or values).
            task: the dataset's task.
            classes: the class names, label i being `classes[i]` (["0", "1", ...] when the dataset names
                none); empty for regression.

        For example cross_entropy's `class_weight = "balanced"` counts the classes here. The default does
        nothing; the result must depend on the arguments alone, so that a resumed run adapts the same way.
        """
        return None


class Layer(Component):
    """A building block of a sequential model.

    `build(input_dim, dtype, rng)` creates the parameters and returns the output width. `forward(x,
    training)` returns the output; `backward(grad)` receives dL/d(output), stores the parameter gradients and
    returns dL/d(input) (or None when `needs_input_grad` is False, as for the first layer).
    `parameters()` and `gradients()` are parallel lists of arrays; optimisers update the former in place.

    Beside its parameters a layer may have:
    - `buffers()`: arrays that belong to the trained model but that the optimiser does not train
      (batch_norm's running statistics). They are saved with the model, restored with the best weights and
      by the NaN guard, carried by checkpoints, and read by the pyfunc model.
    - `penalty()`: a regularisation term added to the reported loss (dense's l1 and l2); `backward` adds its
      gradient to the parameter gradients. `penalized()` says whether there is one (else it costs nothing).
    - `constrain()`: a projection applied to the parameters after every optimiser step (dense's max_norm),
      called only when `constrained()` is True.
    - components named in its params (an `activation`, an `init`): fields declared with
      `component_field(kind, ...)` are validated by that component's `Params`, built by the core and handed to
      `attach(field, component)` before `build`, so they take params from the experiment file too.
    """

    kind: ClassVar[str] = "layer"

    needs_input_grad: bool = True

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.components: dict[str, Component] = {}
        """The components named in this layer's params, by field (`"activation"`), set by `attach`."""

    def attach(self, field: str, component: Component) -> None:
        """Receive the component that the param `field` names (called by the core before `build`)."""
        self.components[field] = component

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        raise NotImplementedError

    def forward(self, x: Array, training: bool) -> Array:
        raise NotImplementedError

    def backward(self, grad: Array) -> Array | None:
        raise NotImplementedError

    def parameters(self) -> list[Array]:
        return []

    def gradients(self) -> list[Array]:
        return []

    def bind(self, params: list[Array], grads: list[Array]) -> bool:
        """Adopt `params`/`grads` (same shapes, already holding the values) as the layer's own arrays.

        The model calls this to place every parameter in one contiguous buffer, so that an element-wise
        optimiser updates all of them with a handful of numpy calls. Return False (the default) to keep
        your own arrays; the model then hands the optimiser one array per parameter.
        """
        return False

    def buffers(self) -> dict[str, Array]:
        """Named arrays of the trained model that are not parameters (see the class docstring); {} by default.

        Return the live arrays (the core copies values into them in place), always in the same order.
        """
        return {}

    def intermediates(self) -> dict[str, Array]:
        """Arrays the last training forward and backward computed inside the layer, by name, for `backprop
        explain` (dense: "z", the pre-activation, and "delta", dL/dz). They may be live buffers: copy them.
        {} by default: explain then shows the layer's input, output and gradients only."""
        return {}

    def penalized(self) -> bool:
        """Whether this instance's `penalty()` can be non-zero (False by default: no cost per epoch)."""
        return False

    def penalty(self) -> float:
        """The regularisation term this layer adds to the loss, at the current parameters (0 by default)."""
        return 0.0

    def constrained(self) -> bool:
        """Whether `constrain()` does anything for this instance (False by default: not called)."""
        return False

    def constrain(self) -> None:
        """Project the parameters onto their constraint, in place, after an optimiser step (no-op by default)."""
        return None

    def config(self) -> dict[str, Any]:
        """The layer's entry for a saved architecture: its name and params."""
        return {"type": self.name, **self.params.model_dump(mode="json")}

    def state_dict(self) -> dict[str, Any]:
        """State that is not a parameter but must survive a checkpoint (a dropout layer's random generator).

        Plain data only: numbers, strings, lists, dicts and numpy arrays.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load")


class OptimizerParams(Params):
    lr: float = Field(0.01, gt=0, description="Learning rate (step size).")


class Optimizer(Component):
    """Updates parameters in place from their gradients.

    `step(params, grads)` is called once per batch with the model's parallel lists; the optimiser keeps its
    per-parameter state (velocities, moments) itself, created on the first step. `state_dict()` and
    `load_state_dict()` give that state as plain arrays and numbers, for exact resume.
    """

    kind: ClassVar[str] = "optimizer"
    Params: ClassVar[type[Params]] = OptimizerParams
    decoupled_weight_decay: ClassVar[bool] = False
    """How the core applies `[optimizer] weight_decay = λ`: False adds the L2 term λ·p to the gradient before
    `step` (sgd, momentum, adam, ...); True shrinks the parameters, p ← p - lr·λ·p, before `step` (adamw).
    Optimisers never implement weight decay (or gradient clipping) themselves."""
    default_weight_decay: ClassVar[float] = 0.0
    """The weight decay used when the experiment does not set `[optimizer] weight_decay` (adamw: 0.01)."""
    elementwise: ClassVar[bool] = True
    """True when the update treats every element on its own (sgd, momentum, adam, ...): the trainer then
    passes all parameters as one flat array, which is much faster for small models. Set False for an
    update that needs each parameter's shape (per-layer norms, ...)."""

    @property
    def lr(self) -> float:
        return float(self.params.lr)  # type: ignore[attr-defined]

    @lr.setter
    def lr(self, value: float) -> None:
        self.params.lr = value  # type: ignore[attr-defined]

    def step(self, params: list[Array], grads: list[Array]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load")


class Initializer(Component):
    """Draws the initial values of a parameter array.

    `__call__(shape, fan_in, fan_out, rng)` returns a float64 array of `shape`; the layer casts it to its
    dtype. `fan_in` and `fan_out` are the number of inputs and outputs of the layer that owns the array (a
    dense kernel of shape (inputs, units) has fan_in = inputs, fan_out = units). All randomness comes from
    `rng`, the run's initialisation generator, so the same seed gives the same weights.
    """

    kind: ClassVar[str] = "initializer"
    deterministic: ClassVar[bool] = False
    """True for an initializer that draws nothing from `rng` (zeros, constant): the conformance kit then checks
    that it leaves the generator untouched, so a zero bias never shifts the weights drawn after it."""

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        raise NotImplementedError


@dataclass
class DataBundle:
    """What a dataset returns: features, targets and what they mean.

    `X` is (n_samples, n_features). `y` is (n_samples,) integer class labels for classification, or
    (n_samples,) / (n_samples, n_targets) values for regression.
    """

    X: Array
    y: Array
    task: Task
    feature_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def n_classes(self) -> int | None:
        if self.task == "regression":
            return None
        if self.target_names:
            return len(self.target_names)
        return int(np.max(self.y)) + 1 if len(self.y) else 0


class Dataset(Component):
    """A source of training data.

    `load(rng)` returns a `DataBundle`; any randomness (synthetic data) comes from `rng`, which is derived
    from the experiment's seed, so the same config gives the same data. `base_dir` is the directory of the
    experiment file (None when the experiment did not come from a file): file datasets resolve relative
    paths against it. `dtype` is the experiment's float dtype: features may be produced in it (no cast copy).
    """

    kind: ClassVar[str] = "dataset"
    base_dir: Path | None = None
    dtype: np.dtype[Any] | None = None

    def load(self, rng: np.random.Generator) -> DataBundle:
        raise NotImplementedError


class Metric(Component):
    """A number computed per epoch on the training and the validation data.

    `direction` says whether lower (`"min"`) or higher (`"max"`) is better; early stopping and sweeps take
    the direction from here, never from the name. `tasks` lists the tasks the metric applies to.
    `__call__(y_true, y_pred)` gets the dataset's targets and the loss's link applied to the outputs.
    """

    kind: ClassVar[str] = "metric"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("regression", "binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        raise NotImplementedError


class Callback(Component):
    """A plugin object for one run: its `@hookimpl` methods receive the event hooks of that run.

    Instances are registered on the run's plugin manager before `before_fit` and removed after the run,
    so runs never share callback state. `state_dict()`/`load_state_dict()` carry the state that a
    checkpoint must keep.
    """

    kind: ClassVar[str] = "callback"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def validate_against(self, trainer: Trainer) -> None:
        """Check this callback's settings against the run before the first epoch (raise UserError)."""
        return None

    def warm_up(self) -> None:
        """Start slow work the run will need later (a process, an import), while the run loads its data and builds
        its model: called once the callback is created, which is before the data is loaded."""
        return None


class Sampler(Component):
    """Chooses the trials of a sweep: the values of the swept keys for each trial (`backprop sweep --sampler`).

    `space` is a `framework.sweep.SearchSpace`: `space.grid` maps a dotted key to the values to try,
    `space.params` a key to its `framework.sweep.Distribution` (uniform, loguniform, int, choice). A sampler
    is one of two sorts:

    - planned (`uses_optuna = False`): `plan(space, trials, seed)` returns every trial at once, as a list
      of ``{key: value}`` overrides in a fixed order (`grid`, `random`). The sweep validates and hashes
      all of them before the first one starts, and a re-run finds the finished ones by their config hash.
      The same arguments must give the same list.
    - driven by Optuna (`uses_optuna = True`): `optuna_sampler(space, seed)` returns an
      `optuna.samplers.BaseSampler` (`tpe`, `cmaes`, `qmc`). The sweep asks an Optuna study for a trial
      each time a worker is free and tells it every result; `trials` is the number of trials in all.
      Import optuna inside the method: it is an optional dependency (`pip install 'backprop[optuna]'`),
      and a missing one becomes a message saying how to install it.
    """

    kind: ClassVar[str] = "sampler"
    uses_optuna: ClassVar[bool] = False
    """True for a sampler that Optuna drives (`optuna_sampler`); False for one that plans every trial (`plan`)."""

    def plan(self, space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
        """Every trial's overrides, in order (planned samplers). Raise `ConfigError` for a space it cannot plan."""
        raise NotImplementedError

    def optuna_sampler(self, space: SearchSpace, seed: int) -> Any:
        """An `optuna.samplers.BaseSampler` seeded with `seed` (samplers that Optuna drives)."""
        raise NotImplementedError


KINDS: dict[str, type[Component]] = {
    "activation": Activation,
    "callback": Callback,
    "dataset": Dataset,
    "initializer": Initializer,
    "layer": Layer,
    "loss": Loss,
    "metric": Metric,
    "optimizer": Optimizer,
    "sampler": Sampler,
}
"""Every kind of component, by the singular name used in messages and the registry."""

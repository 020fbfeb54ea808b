"""The bad-input catalogue's cases (issue 7): every mistake a user can make in a config, its data or its plugins.

`tests/reliability/test_bad_inputs.py` runs each case; `test_hostile.py` and `test_hostile_csv.py` reuse the
base configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BASE = """\
name = "catalogue"
seed = 0

[data]
name = "iris"
validation_split = 0.2

[model]
layers = [{ units = 8, activation = "tanh" }, { units = 3 }]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
epochs = 2
batch_size = 16

[callbacks.early_stopping]
patience = 3

[tracking]
experiment = "catalogue"
"""

CSV_BASE = """\
name = "catalogue-csv"

[data]
name = "csv"
path = "table.csv"
target = "label"
validation_split = 0

[model]
layers = [{ units = 4, activation = "tanh" }, { units = 2 }]

[loss]
name = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.1

[training]
epochs = 1
batch_size = 2
"""

GOOD_CSV = "area,rooms,label\n70,3,flat\n120,5,house\n55,2,flat\n200,6,house\n"
NPZ_BASE = CSV_BASE.replace('name = "csv"', 'name = "npz"').replace(
    'path = "table.csv"\ntarget = "label"\n', 'path = "objects.npz"\n'
)
REGRESSION = {"loss.name": '"mse"', "model.layers.1.units": "1", "data.target": '"price"'}


@dataclass
class Case:
    """One bad input: the files to write, the arguments, and three fragments the error line must contain."""

    files: dict[str, str | bytes]
    args: list[str]
    what: str
    """What is wrong: a phrase of the message that does not depend on the case (kept in troubleshooting.md)."""
    where: str
    """Where: the file and key, or the column."""
    allowed: str
    """What is allowed, or what to do."""
    sets: dict[str, str] = field(default_factory=dict)


def c(
    what: str,
    where: str,
    allowed: str,
    *,
    sets: dict[str, str] | None = None,
    files: dict[str, str | bytes] | None = None,
    args: list[str] | None = None,
) -> Case:
    return Case(
        files if files is not None else {"exp.toml": BASE}, args or ["exp.toml"], what, where, allowed, sets or {}
    )


def csv_case(what: str, where: str, allowed: str, table: str | bytes, sets: dict[str, str] | None = None) -> Case:
    return c(what, where, allowed, sets=sets, files={"exp.toml": CSV_BASE, "table.csv": table})


CASES: dict[str, Case] = {
    # -- malformed files --------------------------------------------------------------------------------
    "toml syntax": c("invalid TOML", "exp.toml", "line 2", files={"exp.toml": 'name = "x"\n[data\n'}),
    "yaml syntax": c(
        "invalid YAML", "exp.yaml", "line 2", files={"exp.yaml": "name: x\n  data: [\n"}, args=["exp.yaml"]
    ),
    "json syntax": c("invalid JSON", "exp.json", "line 1", files={"exp.json": '{"name": "x",}'}, args=["exp.json"]),
    "yaml not a table": c(
        "the top level must be a table", "exp.yaml", "got list", files={"exp.yaml": "- 1\n- 2\n"}, args=["exp.yaml"]
    ),
    "config not utf-8": c("cannot be read", "exp.toml", "utf-8", files={"exp.toml": b"name = '\xff\xfe'\n"}),
    "unsupported format": c(
        "unsupported config format", "exp.ini", "use one of .toml", files={"exp.ini": "x"}, args=["exp.ini"]
    ),
    "config is a directory": c("is a directory", "'exp.toml'", "not a file", files={"exp.toml/x": "x"}),
    # -- unknown keys, at every level ------------------------------------------------------------------
    "unknown top-level key": c("unknown key", "exp.toml: nme", "Did you mean 'name'?", sets={"nme": '"x"'}),
    "unknown data key": c(
        "unknown key",
        "exp.toml: data.validaton_split",
        "Did you mean 'validation_split'?",
        sets={"data.validaton_split": "0.1"},
    ),
    "unknown model key": c("unknown key", "exp.toml: model.layer", "Allowed: layers", sets={"model.layer": "1"}),
    "unknown layer key": c(
        "unknown key", "exp.toml: model.layers.0.unit", "Did you mean 'units'?", sets={"model.layers.0.unit": "4"}
    ),
    "unknown loss key": c("unknown key", "exp.toml: loss.reduction", "Allowed: name", sets={"loss.reduction": '"sum"'}),
    "unknown optimizer key": c(
        "unknown key", "exp.toml: optimizer.beta1", "Did you mean 'beta_1'?", sets={"optimizer.beta1": "0.9"}
    ),
    "unknown training key": c(
        "unknown key", "exp.toml: training.epoch", "Did you mean 'epochs'?", sets={"training.epoch": "3"}
    ),
    "unknown callback key": c(
        "unknown key",
        "exp.toml: callbacks.early_stopping.patiense",
        "Did you mean 'patience'?",
        sets={"callbacks.early_stopping.patiense": "3"},
    ),
    "unknown tracking key": c(
        "unknown key",
        "exp.toml: tracking.experment",
        "Did you mean 'experiment'?",
        sets={"tracking.experment": '"x"'},
    ),
    "unknown sweep key": c(
        "unknown key", "exp.toml: sweep.trails", "Did you mean 'trials'?", sets={"sweep.trails": "3"}
    ),
    # -- wrong types -----------------------------------------------------------------------------------
    "epochs not an integer": c(
        "Input should be a valid integer", "exp.toml: training.epochs", "got 'ten'", sets={"training.epochs": '"ten"'}
    ),
    "shuffle not a boolean": c(
        "Input should be a valid boolean", "exp.toml: training.shuffle", "got 3", sets={"training.shuffle": "3"}
    ),
    "layers not a list": c(
        "Input should be a valid list", "exp.toml: model.layers", "got 3", sets={"model.layers": "3"}
    ),
    "callback not a table": c(
        "Input should be a valid dictionary",
        "exp.toml: callbacks.early_stopping",
        "got 3",
        sets={"callbacks.early_stopping": "3"},
    ),
    "units not an integer": c(
        "Input should be a valid integer",
        "exp.toml: model.layers.0.units",
        "got 'many'",
        sets={"model.layers.0.units": '"many"'},
    ),
    "unknown dtype": c(
        "Input should be 'float32' or 'float64'", "exp.toml: dtype", "got 'float16'", sets={"dtype": '"float16"'}
    ),
    # -- out of range ----------------------------------------------------------------------------------
    "negative learning rate": c(
        "Input should be greater than 0", "exp.toml: optimizer.lr", "got -1", sets={"optimizer.lr": "-1"}
    ),
    "NaN learning rate": c(
        "Input should be greater than 0", "exp.toml: optimizer.lr", "got nan", sets={"optimizer.lr": "nan"}
    ),
    "zero batch size": c(
        "Input should be greater than or equal to 1",
        "exp.toml: training.batch_size",
        "got 0",
        sets={"training.batch_size": "0"},
    ),
    "zero units": c(
        "Input should be greater than or equal to 1",
        "exp.toml: model.layers.0.units",
        "got 0",
        sets={"model.layers.0.units": "0"},
    ),
    "negative patience": c(
        "Input should be greater than or equal to 0",
        "exp.toml: callbacks.early_stopping.patience",
        "got -1",
        sets={"callbacks.early_stopping.patience": "-1"},
    ),
    "validation split of 1": c(
        "Input should be less than 1", "exp.toml: data.validation_split", "got 1", sets={"data.validation_split": "1"}
    ),
    "validation split leaving no training data": c(
        "leaves no training samples",
        "exp.toml: data.validation_split",
        "hold out a smaller fraction",
        sets={"data.validation_split": "0.999"},
    ),
    # -- unknown components of every kind --------------------------------------------------------------
    "unknown dataset": c("unknown dataset", "exp.toml: data.name", "Did you mean 'iris'?", sets={"data.name": '"irs"'}),
    "unknown layer type": c(
        "unknown layer",
        "exp.toml: model.layers.0.type",
        "Did you mean 'dense'?",
        sets={"model.layers.0.type": '"dens"'},
    ),
    "unknown activation": c(
        "unknown activation",
        "exp.toml: model.layers.0.activation",
        "Did you mean 'relu'?",
        sets={"model.layers.0.activation": '"rleu"'},
    ),
    "unknown loss": c(
        "unknown loss", "exp.toml: loss.name", "Did you mean 'cross_entropy'?", sets={"loss.name": '"crossentropy"'}
    ),
    "unknown optimizer": c(
        "unknown optimizer", "exp.toml: optimizer.name", "Did you mean 'adam'?", sets={"optimizer.name": '"adamm"'}
    ),
    "unknown metric": c(
        "unknown metric",
        "exp.toml: training.metrics.0",
        "Did you mean 'accuracy'?",
        sets={"training.metrics": '["acuracy"]'},
    ),
    "unknown callback": c(
        "unknown callback",
        "exp.toml: callbacks",
        "Did you mean 'early_stopping'?",
        sets={"callbacks.earlystopping.patience": "1"},
    ),
    "unknown monitored metric": c(
        "is not computed in this run",
        "exp.toml: callbacks.early_stopping.monitor",
        "Did you mean 'val_accuracy'?",
        sets={"callbacks.early_stopping.monitor": '"val_acuracy"'},
    ),
    # -- missing files and plugins ---------------------------------------------------------------------
    "missing config file": c("not found", "config file 'nope.toml'", "not found", args=["nope.toml"]),
    "missing data file": csv_case(
        "not found",
        "data.path: file 'nope.csv'",
        "relative to the experiment file",
        GOOD_CSV,
        sets={"data.path": '"nope.csv"'},
    ),
    "data path is a directory": c(
        "is a directory",
        "data.path",
        "name the data file itself",
        files={"exp.toml": CSV_BASE, "table.csv/x": "x"},
    ),
    "missing plugin file": c("not found", "plugin file 'nope.py'", "looked for", sets={"plugins": '["nope.py"]'}),
    "missing plugin module": c(
        "not found", "plugin module 'nope_mod'", "is it installed?", args=["exp.toml", "--plugin", "nope_mod"]
    ),
    "plugin fails to import": c(
        "failed to import",
        "plugin 'broken' (",
        "RuntimeError: boom at import",
        files={"exp.toml": BASE, "broken.py": "raise RuntimeError('boom at import')\n"},
        sets={"plugins": '["broken.py"]'},
    ),
    "plugin with a syntax error": c(
        "failed to import",
        "plugin 'syntax' (",
        "SyntaxError",
        files={"exp.toml": BASE, "syntax.py": "x = (\n"},
        sets={"plugins": '["syntax.py"]'},
    ),
    "essential plugin disabled": c(
        "is essential and cannot be disabled",
        "plugin 'layers'",
        "it registers 'dense'",
        sets={"disabled_plugins": '["layers"]'},
    ),
    "tracking plugin disabled": c(
        "no plugin provides the 'mlflow' callback",
        "tracking",
        "--no-track",
        args=["exp.toml", "--disable-plugin", "tracking"],
    ),
    # -- CSV files -------------------------------------------------------------------------------------
    "csv missing target column": csv_case(
        "has no column", "data.target: table.csv", "Columns: area, rooms, label", GOOD_CSV, {"data.target": '"lable"'}
    ),
    "csv non-numeric value": csv_case(
        "is not numeric",
        "column 'rooms'",
        "only the target may hold labels",
        "area,rooms,label\n70,3,flat\n120,five,house\n",
    ),
    "csv ragged rows": csv_case(
        "values, expected 3", "table.csv: line 3", "expected 3", "area,rooms,label\n70,3,flat\n120,5\n"
    ),
    "csv empty file": csv_case("the file is empty", "table.csv", "empty", ""),
    "csv header only": csv_case("no data rows", "table.csv", "no data rows", "area,rooms,label\n"),
    "csv not utf-8": csv_case("not a UTF-8 text file", "table.csv", "save the table as UTF-8", b"\xff\xfe\x00a,b\n"),
    "csv empty cell": csv_case(
        "has NaN or infinite values", "feature 'rooms'", "clean or impute", "area,rooms,label\n70,,flat\n120,5,house\n"
    ),
    "csv infinite value": csv_case(
        "has NaN or infinite values", "feature 'area'", "clean or impute", "area,rooms,label\ninf,3,flat\n120,5,house\n"
    ),
    "csv NaN target": csv_case(
        "has NaN or infinite values",
        "target 'price'",
        "drop those rows",
        "area,rooms,price\n70,3,100\n120,5,nan\n",
        REGRESSION,
    ),
    # -- data and model that do not fit ----------------------------------------------------------------
    "too few output units": c(
        "the last layer has 2 units",
        "exp.toml: model.layers",
        "set the last layer's units = 3",
        sets={"model.layers.1.units": "2"},
    ),
    "regression output width": csv_case(
        "the last layer has 2 units",
        "exp.toml: model.layers",
        "set units = 1",
        "area,rooms,price\n70,3,100\n120,5,200\n",
        {**REGRESSION, "model.layers.1.units": "2"},
    ),
    "loss for another task": c(
        "is for regression",
        "exp.toml: loss.name",
        "multiclass task",
        sets={"loss.name": '"mse"', "model.layers.1.units": "1"},
    ),
    "metric for another task": c(
        "is for regression tasks",
        "exp.toml: training.metrics.0",
        "multiclass task",
        sets={"training.metrics": '["mae"]'},
    ),
    "standardised class labels": c(
        "only regression targets can be standardised",
        "exp.toml: data.standardize_target",
        "multiclass task",
        sets={"data.standardize_target": "true"},
    ),
    "npz object array": c(
        "refused to load",
        "objects.npz",
        "plain numeric arrays",
        files={"exp.toml": NPZ_BASE},
    ),
    "checkpoint dir is a file": c(
        "cannot be a directory",
        "exp.toml: training.checkpoint_dir",
        "remove or rename that file",
        files={"exp.toml": BASE, "ckpt": "not a directory"},
        sets={"training.checkpoint_every": "1", "training.checkpoint_dir": '"ckpt"'},
    ),
    # -- --set -----------------------------------------------------------------------------------------
    "--set unknown list index": c(
        "is not an index of the list",
        "--set model.layers.5.units",
        "model.layers.5",
        sets={"model.layers.5.units": "3"},
    ),
    "--set through a value": c(
        "is not a table", "--set training.epochs.x", "training.epochs", sets={"training.epochs.x": "3"}
    ),
    "--set unparsable value": c(
        "as a TOML value", "--set optimizer.lr", "write lists as [1, 2]", sets={"optimizer.lr": "[1,"}
    ),
    "--set without =": c(
        "expected KEY=VALUE",
        "--set 'optimizer.lr'",
        "for example optimizer.lr=0.1",
        args=["exp.toml", "--set", "optimizer.lr"],
    ),
    "--resume of nothing": c(
        "no checkpoint", "'no-such-run'", "pass a checkpoint directory", args=["--resume", "no-such-run"]
    ),
}

"""What the hyperparameters ask of the data, checked before training: the columns (before any row is
fetched), the classes (once the hosts agree on them) and the hosts (before anything)."""

from __future__ import annotations

from training.collective.cluster import Cluster
from training.errors import DataError, HyperparameterError
from training.hyperparameters import Hyperparameters
from training.read.columns import ColumnPlan
from training.train.boosting import params


def check_plan(hps: Hyperparameters, columns: ColumnPlan) -> None:
    """What the hyperparameters ask of the columns, checked before any row is fetched."""
    params(hps, columns)  # the constraints name features of this plan
    text = [c.name for c in columns.features if c.needs_vocabulary]
    if hps.linear and text:
        raise DataError(f"booster=gblinear cannot use text column {text[0]!r} (XGBoost's linear booster has no "
                        "categories): drop the text columns from 'features', or use booster=gbtree")


def check_classes(columns: ColumnPlan, hps: Hyperparameters) -> None:
    classes = columns.classes
    if classes is None:
        return
    objective, label, shown = hps["objective"], columns.label.name, ", ".join(map(str, classes[:10]))
    if len(classes) < 2:
        raise DataError(f"target {label!r} has {len(classes)} distinct value(s) ({shown}): a classifier needs at "
                        "least two classes; check the table or the target")
    if not hps.multiclass and len(classes) != 2:
        raise DataError(f"target {label!r} has {len(classes)} classes ({shown}), but objective {objective!r} needs "
                        "exactly 2: use objective=multi:softprob")
    if hps.multiclass and hps["num_class"] and hps["num_class"] != len(classes):
        raise DataError(f"hyperparameter 'num_class' is {hps['num_class']}, but target {label!r} has "
                        f"{len(classes)} classes ({shown}): set num_class={len(classes)} or leave it out")


def check_hosts(hps: Hyperparameters, cluster: Cluster) -> None:
    """survival:cox trains on one host: XGBoost computes its gradient from each host's own risk sets and
    cannot all-reduce cox-nloglik, so several hosts would fit another model (or fail)."""
    if hps.objective_entry.one_host and cluster.size > 1:
        raise HyperparameterError(f"objective {hps['objective']} needs every row's risk set on one host (XGBoost "
                                  f"evaluates cox-nloglik on one host only), and the job has {cluster.size} hosts: "
                                  "train it on one host (instance_count = 1)")

"""docs/hyperparameters.md lists every hyperparameter, alias, retired name and objective the job accepts.

The reference part of the page is rendered from the hyperparameter table; this test keeps the
two equal. After changing the table, rewrite the page with
``.venv/bin/python -m tests.unit.test_hyperparameter_docs``.
"""

from pathlib import Path

from training.hyperparameters import (
    ALIASES,
    APPLIES_WHEN,
    HYPERPARAMETERS,
    RENAMED_VALUES,
    REQUIRED,
    RETIRED,
)
from training.objectives.catalog import METRIC_NEEDS, OBJECTIVES
from training.objectives.metrics import CUSTOM_METRICS, EVAL_METRICS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "hyperparameters.md"
BEGIN, END = "<!-- BEGIN generated from training/hyperparameters/table.py and training/objectives/catalog.py -->", "<!-- END generated -->"


def _range(spec) -> str:
    if spec.tuning is None:
        return ""
    t = spec.tuning
    text = ", ".join(t.values) if t.kind == "categorical" else f"{t.low:g} to {t.high:g}"
    if t.scaling != "Auto":
        text += f" ({t.scaling.lower()})"
    return text + ("" if spec.searched else " (when asked for)")


def _default(spec) -> str:
    if spec.default is REQUIRED:
        return "required"
    if spec.default is None:
        return "unset"
    return f"`{spec.default}`" if spec.default != "" else "empty"


def _maps_to(spec) -> str:
    if not spec.xgboost:
        return "the job"
    when = APPLIES_WHEN.get(spec.name)
    return f"XGBoost `{spec.name}`" + (f" (with {when[0]}={' or '.join(when[1])})" if when else "")


def render() -> str:
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines = ["| name | valid values | default | tuning range | goes to | what it does |",
             "|---|---|---|---|---|---|"]
    for spec in HYPERPARAMETERS:
        lines.append(f"| `{spec.name}` | {cell(spec.describe())} | {cell(_default(spec))} | {_range(spec)} | "
                     f"{_maps_to(spec)} | {cell(spec.help)} |")
    lines += ["", "Other names XGBoost and the built-in algorithm accept for the same setting:", ""]
    lines += [f"- `{alias}`: `{name}`" for alias, name in ALIASES.items()]
    lines += ["", "Accepted and ignored, with one line in the job's log (the built-in algorithm's, meaningless here):",
              ""]
    lines += [f"- `{name}`: {why}" for name, why in RETIRED.items()]
    lines += ["", "Values read under their new name, with one line in the log:", ""]
    lines += [f"- `{key}={old}`: `{new}`" for (key, old), new in RENAMED_VALUES.items()]
    lines += ["", "The objectives (training/objectives/catalog.py):", "",
              "| objective | kind | default `eval_metric` | labels | its own hyperparameters |", "|---|---|---|---|---|"]
    lines += [f"| `{o.name}` | {o.family} | `{o.default_metric}` | {o.label.words if o.label else 'any number' if not o.classification else 'classes'} | "
              f"{', '.join(f'`{p}`' for p in o.params) or '-'} |" for o in OBJECTIVES.values()]
    lines += ["", "`eval_metric` values (comma-separated; the first drives early stopping): "
              + ", ".join(f"`{m}`" for m in EVAL_METRICS) + ". Ranking metrics take `@k` (the top k rows of each "
              "list) and a trailing `-` (`ndcg@5-`: a list with no relevant row scores 0, not 1); `error@t` sets "
              "the threshold. Metrics that go with some objectives only (XGBoost fails or means nothing otherwise):",
              ""]
    lines += [f"- `{metric}` needs {needs}" for metric, needs in METRIC_NEEDS.items() if metric not in CUSTOM_METRICS]
    return "\n".join(lines)


def test_the_page_lists_what_the_table_holds():
    text = PAGE.read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == render(), "docs/hyperparameters.md is stale: run python -m tests.unit.test_hyperparameter_docs"


if __name__ == "__main__":
    head, rest = PAGE.read_text().split(BEGIN, 1)
    PAGE.write_text(f"{head}{BEGIN}\n{render()}\n{END}{rest.split(END, 1)[1]}")

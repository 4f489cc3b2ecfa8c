"""The evaluation as files a person opens: PNG charts (matplotlib) and the numbers behind them (JSON, CSV).

:func:`write_evaluation` writes one folder, logged as the run's ``evaluation/`` artifacts:

- ``evaluation.json``: every scalar, curve and matrix of the report, and the feature importance;
- per family, a CSV and a PNG per chart: ``residuals``, ``predicted_vs_actual`` (regression);
  ``ndcg_at_k`` (ranking);
  ``roc``, ``precision_recall``, ``calibration``, ``confusion_matrix`` (classification;
  multiclass: one ROC curve per class, up to :data:`MAX_CLASS_CURVES`);
- ``feature_importance.csv`` (gain, cover, weight, total gain and cover per column, by the
  table's own names) and ``feature_importance.png`` (the top :data:`TOP_FEATURES` by gain);
- ``shap_importance.csv`` (mean |SHAP value| per column over the validation rows used, highest
  first; multiclass: per class too; the rows used) and ``shap_importance.png`` (the top
  :data:`TOP_FEATURES`; multiclass: stacked by class), when the job computed them
  (:mod:`training.evaluation.contributions`).

matplotlib is imported here only (the base image ships it), with the file-only Agg backend.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from training.evaluation.contributions import ShapImportance
from training.evaluation.report import BINARY, MULTICLASS, RANKING, REGRESSION, Report

TOP_FEATURES = 20
MAX_CLASS_CURVES = 10


def write_evaluation(report: Report | None, importance: dict[str, dict[str, float]], folder: Path,
                     title: str, shap: ShapImportance | None = None) -> list[Path]:
    """Write the charts and numbers of ``report``, ``importance`` and ``shap`` into ``folder``; return the files."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    folder.mkdir(parents=True, exist_ok=True)
    files = [_json(folder / "evaluation.json", {**(report.to_json() if report else {}), "feature_importance":
                                                  importance, **({"shap_importance": shap.to_json()} if shap else {})})]
    if report is not None:
        for name, curve in report.curves.items():
            files.append(_csv(folder / f"{name}.csv", curve))
        files += _charts(report, folder, title)
        if report.confusion is not None:
            files.append(_confusion_csv(folder / "confusion_matrix.csv", report))
            files.append(_confusion_chart(folder / "confusion_matrix.png", report, title))
    if importance:
        files.append(_importance_csv(folder / "feature_importance.csv", importance))
        files.append(_importance_chart(folder / "feature_importance.png", importance, title))
    if shap is not None:
        files.append(_shap_csv(folder / "shap_importance.csv", shap))
        files.append(_shap_chart(folder / "shap_importance.png", shap, title))
    return files


def _json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=1, allow_nan=True, default=float))
    return path


def _csv(path: Path, columns: dict[str, list[Any]]) -> Path:
    longest = max((len(v) for v in columns.values()), default=0)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(list(columns))
        for i in range(longest):
            writer.writerow([values[i] if i < len(values) else "" for values in columns.values()])
    return path


def _figure(title: str, subtitle: str) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.set_title(f"{subtitle}\n{title}", fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _charts(report: Report, folder: Path, title: str) -> list[Path]:
    s, c = report.scalars, report.curves
    out = []
    if report.kind == RANKING:
        curve = c["ndcg_at_k"]
        fig, ax = _figure(title, f"NDCG@k by k over {curve['groups'][0]:,.0f} validation groups")
        ax.plot(curve["k"], curve["ndcg"], "o-")
        ax.set_xlabel("k (rows at the top of each group)")
        ax.set_ylabel("mean NDCG@k")
        ax.set_ylim(0, 1.02)
        return [_save(fig, folder / "ndcg_at_k.png")]
    if report.kind == REGRESSION:
        fig, ax = _figure(title, f"residuals (predicted - actual), RMSE {s['rmse']:.4g}")
        r = c["residuals"]
        ax.bar(r["bin_low"], r["weight"], width=[h - lo for lo, h in zip(r["bin_low"], r["bin_high"], strict=True)],
               align="edge", edgecolor="white")
        ax.set_xlabel("residual")
        ax.set_ylabel("rows (weighted)")
        out.append(_save(fig, folder / "residuals.png"))
        fig, ax = _figure(title, f"predicted vs actual, binned by actual; R\u00b2 {s['r2']:.4g}")
        p = c["predicted_vs_actual"]
        ax.plot(p["mean_actual"], p["mean_predicted"], "o-", label="mean predicted per bin")
        low = min(p["mean_actual"] + p["mean_predicted"], default=0.0)
        high = max(p["mean_actual"] + p["mean_predicted"], default=1.0)
        ax.plot([low, high], [low, high], "--", color="grey", label="predicted = actual")
        ax.set_xlabel("actual (bin mean)")
        ax.set_ylabel("predicted (bin mean)")
        ax.legend()
        out.append(_save(fig, folder / "predicted_vs_actual.png"))
        return out
    fig, ax = _figure(title, f"ROC, AUC {s['auc']:.4g}" + (" (macro, one-vs-rest)" if report.kind == MULTICLASS
                                                            else ""))
    if report.kind == BINARY:
        ax.plot(c["roc"]["false_positive_rate"], c["roc"]["true_positive_rate"], label=_positive(report))
    else:
        for i, name in enumerate(report.class_names[:MAX_CLASS_CURVES]):
            roc = c[f"roc_{i}"]
            ax.plot(roc["false_positive_rate"], roc["true_positive_rate"], label=str(name))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8)
    out.append(_save(fig, folder / "roc.png"))
    if report.kind == BINARY:
        fig, ax = _figure(title, f"precision-recall, average precision {s['aucpr']:.4g}")
        ax.plot(c["precision_recall"]["recall"], c["precision_recall"]["precision"], label=_positive(report))
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        out.append(_save(fig, folder / "precision_recall.png"))
    which = "positive class" if report.kind == BINARY else "top class"
    fig, ax = _figure(title, f"calibration ({which}'s probability)")
    cal = c["calibration"]
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction positive" if report.kind == BINARY else "fraction correct")
    ax.legend(fontsize=8)
    out.append(_save(fig, folder / "calibration.png"))
    return out


def _positive(report: Report) -> str:
    return f"positive class {report.class_names[1]!s}" if len(report.class_names) > 1 else "positive class"


def _confusion_csv(path: Path, report: Report) -> Path:
    names = [str(n) for n in report.class_names]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["actual \\ predicted", *names])
        for name, row in zip(names, report.confusion or [], strict=True):
            writer.writerow([name, *row])
    return path


def _confusion_chart(path: Path, report: Report, title: str) -> Path:
    import numpy as np

    matrix = np.array(report.confusion)
    k = len(matrix)
    fig, ax = _figure(title, f"confusion matrix, accuracy {report.scalars['accuracy']:.4g}")
    ax.grid(False)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    names = [str(n) for n in report.class_names]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if k <= 20:
        top = matrix.max() or 1.0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{matrix[i, j]:.4g}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > top / 2 else "black")
    return _save(fig, path)


def _importance_csv(path: Path, importance: dict[str, dict[str, float]]) -> Path:
    kinds = sorted({k for values in importance.values() for k in values})
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["feature", *kinds])
        for name, values in importance.items():
            writer.writerow([name, *(values.get(k, 0.0) for k in kinds)])
    return path


def _importance_chart(path: Path, importance: dict[str, dict[str, float]], title: str) -> Path:
    kind = "gain" if any("gain" in v for v in importance.values()) else "coefficient"
    ranked = sorted(importance.items(), key=lambda item: abs(item[1].get(kind, 0.0)), reverse=True)[:TOP_FEATURES]
    ranked = [(name, v.get(kind, 0.0)) for name, v in ranked if not math.isnan(v.get(kind, 0.0))][::-1]
    fig, ax = _figure(title, f"feature importance ({kind}; top {len(ranked)})")
    ax.barh([name for name, _ in ranked], [value for _, value in ranked])
    ax.set_xlabel(kind)
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


def _shap_csv(path: Path, shap: ShapImportance) -> Path:
    """One line per feature, highest importance first: ``feature,mean_abs_shap[,mean_abs_shap[<class>]...],rows``.

    ``rows``, the same on every line, is how many validation rows the means are over (``shap_rows``
    caps them), so the file says what it measured without its run.
    """
    classes = list(shap.per_class)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["feature", "mean_abs_shap", *(f"mean_abs_shap[{c}]" for c in classes), "rows"])
        for name, value in shap.ranked():
            writer.writerow([name, value, *(shap.per_class[c][name] for c in classes), shap.rows])
    return path


def _shap_chart(path: Path, shap: ShapImportance, title: str) -> Path:
    ranked = shap.ranked()[:TOP_FEATURES][::-1]
    names = [name for name, _ in ranked]
    capped = f" of {shap.validation_rows:,}" if shap.rows < shap.validation_rows else ""
    fig, ax = _figure(title, f"mean |SHAP value| over {shap.rows:,}{capped} validation rows (top {len(ranked)})")
    if shap.per_class and len(shap.per_class) <= MAX_CLASS_CURVES:
        left = [0.0] * len(names)
        for name, values in shap.per_class.items():
            widths = [values[feature] for feature in names]
            ax.barh(names, widths, left=left, label=str(name))
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.legend(fontsize=8, title="class")
    else:
        ax.barh(names, [value for _, value in ranked])
    ax.set_xlabel("mean |SHAP value| (margin units" + (", summed over classes)" if shap.per_class else ")"))
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)

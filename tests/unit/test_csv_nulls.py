"""One meaning of NULL in CSV: the fields pandas reads as missing (MLflow's CSV input) are NULL in a ``--data``
file and in the endpoint's ``text/csv`` body too, in text and number columns alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pandas._libs.parsers import STR_NA_VALUES

from launch import datasets
from training.model import scoring
from training.read.columns import FEATURE, LABEL, NULL_TEXTS, ColumnPlan, ColumnSpec

PLAN = ColumnPlan((ColumnSpec("sex", "TEXT", "categorical", FEATURE), ColumnSpec("mass", "REAL", "numeric", FEATURE),
                   ColumnSpec("y", "REAL", "numeric", LABEL)), {"sex": ("female", "male")})
CSV = "sex,mass,y\n" + "".join(f"{text},{text},1\n" for text in NULL_TEXTS) + "female,3.5,2\n"
NULLS = [True] * len(NULL_TEXTS) + [False]


def test_the_null_fields_are_pandas_defaults() -> None:
    assert sorted(NULL_TEXTS) == sorted(STR_NA_VALUES)  # what `mlflow models predict -t csv` reads as missing


def test_a_data_file_the_endpoint_and_pandas_read_the_same_fields_as_null(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(CSV)
    datasets.write_data_file(tmp_path / "rows.csv", tmp_path / "rows.parquet")
    loaded = pq.read_table(tmp_path / "rows.parquet")
    served = scoring.read_rows(CSV.encode(), "text/csv", PLAN)
    mlflow = pd.read_csv(tmp_path / "rows.csv")  # how MLflow reads a CSV input
    for name in ("sex", "mass"):
        assert loaded.column(name).is_null().to_pylist() == NULLS, name
        assert served[name].is_null().to_pylist() == NULLS, name
        assert mlflow[name].isna().tolist() == NULLS, name
    assert loaded.column("sex").to_pylist()[-1] == "female" and loaded.column("mass").to_pylist()[-1] == 3.5


def test_a_data_file_column_of_nulls_only_loads_as_text(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("x,empty\n1,NA\n2,\n")
    assert str(datasets.write_data_file(tmp_path / "rows.csv", tmp_path / "rows.parquet").field("empty").type) == "string"

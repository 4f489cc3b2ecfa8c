"""The image's ``serve`` command, for real: ``python -m container serve`` on a free port, in front of a
model logged by the project's own MLflow code (a registered model's layout) and of a job's bare
model file. Raw rows (text, NULLs, booleans, dates, timestamps) posted as CSV and as JSON score
exactly as the MLflow model (:class:`training.tracking.pyfunc.TableModel`) scores them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
import xgboost as xgb

from launch import datasets
from launch.local import user_job
from launch.local.services import free_port
from training import contract
from training.model.booster import embed_plan, load, predict_rows, scoring_matrix
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

REPO = Path(__file__).resolve().parents[2]
PLAN = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("city", "TEXT", "categorical", FEATURE),
                   ColumnSpec("member", "BOOLEAN", "boolean", FEATURE), ColumnSpec("signup", "DATE", "date", FEATURE),
                   ColumnSpec("seen", "TIMESTAMP_NTZ", "timestamp", FEATURE), ColumnSpec("y", "REAL", "numeric", LABEL)),
                  {"city": ("lima", "oslo", "rome")})
ROWS = pd.DataFrame({
    "x": [0.5, None, -1.0, 2.0],
    "city": ["oslo", None, "paris", "rome"],  # paris: not in the vocabulary, so missing
    "member": [True, None, False, True],
    "signup": ["2020-01-05", None, "2021-06-01", "2020-03-01"],
    "seen": ["2021-01-01 10:00:00", "2022-01-01T00:00:00", None, "2021-05-05 00:00:01"],
})
CSV = ("x,city,member,signup,seen,y\n"  # y, the label, is extra: ignored
       "0.5,oslo,true,2020-01-05,2021-01-01 10:00:00,1\n"
       ",,,,2022-01-01T00:00:00,\n"
       "-1.0,paris,false,2021-06-01,,3\n"
       "2.0,rome,true,2020-03-01,2021-05-05 00:00:01,\n")

pytestmark = pytest.mark.slow


def _booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    n = 400
    x = np.c_[rng.normal(size=n), rng.integers(0, 3, n), rng.integers(0, 2, n), rng.integers(18_000, 19_000, n),
              rng.integers(1_600_000_000, 1_700_000_000, n)].astype(np.float32)
    y = x[:, 0] + x[:, 1] + x[:, 2] + (x[:, 3] - 18_500) / 300 + (x[:, 4] - 1.65e9) / 3e7
    data = xgb.DMatrix(x, y, feature_names=PLAN.xgboost_feature_names, feature_types=PLAN.feature_types,
                       enable_categorical=True)
    booster = xgb.train({"max_depth": 3}, data, 10)
    embed_plan(booster, PLAN)  # as the job does before the first round
    return booster


@pytest.fixture(scope="module")
def mlflow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model logged by training.tracking.pyfunc.log_model, downloaded as a registry download lays it out."""
    import mlflow

    from training.tracking import pyfunc

    root = tmp_path_factory.mktemp("mlflow")
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    experiment = client.create_experiment("serve", artifact_location=(root / "artifacts").as_uri())
    run = client.create_run(experiment)
    example = pa.table({"x": pa.array([0.5, None], pa.float64()), "city": ["oslo", None],
                        "member": pa.array([True, None]), "signup": pa.array([pd.Timestamp("2020-01-05").date(), None]),
                        "seen": pa.array([pd.Timestamp("2021-01-01 10:00"), None])})
    uri = pyfunc.log_model(client, run.info.run_id, experiment, "model", _booster(), PLAN, example, {})
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "download")))


def _serve(base_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, contract.BASE_DIR_ENV: str(base_dir), contract.SERVING_PORT_ENV: str(port),
           contract.SERVING_WORKERS_ENV: "1", "PYTHONPATH": str(REPO), "NO_PROXY": "*"}
    log = (base_dir / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "container", contract.SERVE_COMMAND], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(url, process, base_dir / "serve.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def _wait_for_ping(url: str, process: Any, log: Path) -> None:
    """Until the server at ``url`` answers /ping (fails the test with its log's end if it never does)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or (a loaded machine) slow to answer
            time.sleep(0.5)
    pytest.fail(f"the server at {url} did not answer /ping: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def registered(mlflow_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("serve-mlflow")
    shutil.copytree(mlflow_model, contract.model_dir(base))
    yield from _serve(base)


def _predictions(response: requests.Response) -> list[float]:
    assert response.status_code == 200, response.text
    return [row["prediction"] for row in response.json()["predictions"]]


def _expected(mlflow_model: Path) -> list[float]:
    import mlflow.pyfunc

    return list(mlflow.pyfunc.load_model(str(mlflow_model)).unwrap_python_model().predict(None, ROWS)["prediction"])


def test_ping_answers_and_csv_rows_score_as_the_mlflow_model(registered: str, mlflow_model: Path) -> None:
    assert requests.get(f"{registered}/ping", timeout=10).status_code == 200
    got = _predictions(requests.post(f"{registered}/invocations", data=CSV, headers={"Content-Type": "text/csv"},
                                     timeout=30))
    np.testing.assert_allclose(got, _expected(mlflow_model), rtol=1e-6)


@pytest.mark.parametrize("layout", ["dataframe_split", "dataframe_records", "records"])
def test_json_rows_score_as_the_mlflow_model(registered: str, mlflow_model: Path, layout: str) -> None:
    records = json.loads(ROWS.to_json(orient="records"))
    body = {"dataframe_split": {"dataframe_split": json.loads(ROWS.to_json(orient="split", index=False))},
            "dataframe_records": {"dataframe_records": records}, "records": records}[layout]
    got = _predictions(requests.post(f"{registered}/invocations", json=body, timeout=30))
    np.testing.assert_allclose(got, _expected(mlflow_model), rtol=1e-6)


def test_a_null_boolean_scores_as_missing_through_mlflows_own_serving_input(mlflow_model: Path) -> None:
    """MLflow's serving input path (what ``mlflow models serve`` and ``mlflow models predict`` run) scores a
    NULL boolean as missing, as predict_rows does, not as False."""
    from mlflow.models import validate_serving_input

    rows = pd.DataFrame({"x": [0.5] * 3, "city": ["oslo"] * 3, "member": [None, False, True],
                         "signup": ["2020-01-05"] * 3, "seen": ["2021-01-01 10:00:00"] * 3})
    served = validate_serving_input(str(mlflow_model), json.dumps(
        {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}))
    import mlflow.pyfunc

    expected = mlflow.pyfunc.load_model(str(mlflow_model)).unwrap_python_model().predict(None, rows)["prediction"]
    np.testing.assert_allclose(served["prediction"], expected, rtol=1e-6)
    assert expected[0] != expected[1]  # the model tells missing from False: a False in its place would show


NULL_ROWS = pd.DataFrame({  # a NULL in each kind of column, a False next to the NULL boolean, all NULL
    "x": [None, 0.5, 0.5, 0.5, 0.5, 0.5, None],
    "city": ["oslo", None, "oslo", "oslo", "oslo", "oslo", None],
    "member": [True, True, None, False, True, True, None],
    "signup": ["2020-01-05", "2020-01-05", "2020-01-05", "2020-01-05", None, "2020-01-05", None],
    "seen": ["2021-01-01 10:00:00", "2021-01-01T10:00:00", "2021-01-01 10:00:00", "2021-01-01 10:00:00",
             "2021-01-01 10:00:00", None, None],  # two ISO 8601 forms, as the endpoint accepts them
})


def _mlflow_cli(*args: str, **popen: Any) -> Any:
    """MLflow's own command line in this environment (its scoring server runs ``uvicorn`` from PATH)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "NO_PROXY": "*"}
    command = [str(Path(sys.executable).parent / "mlflow"), "models", *args, "--env-manager", "local"]
    if popen:
        return subprocess.Popen(command, env=env, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _null_rows_expected(mlflow_model: Path) -> np.ndarray:
    from training.model.booster import load, predict_rows

    expected = predict_rows(*load(mlflow_model / "artifacts" / contract.MODEL_FILE), NULL_ROWS)["prediction"]
    assert expected[2] != expected[3]  # the model tells a NULL boolean from False: a False in its place would show
    return np.asarray(expected)


@pytest.mark.parametrize("form", ["json", "csv"])
def test_mlflow_models_predict_scores_nulls_of_every_kind_as_predict_rows(mlflow_model: Path, tmp_path: Path,
                                                                          form: str) -> None:
    rows = tmp_path / f"rows.{form}"
    if form == "json":
        rows.write_text(json.dumps({"dataframe_split": json.loads(NULL_ROWS.to_json(orient="split", index=False))}))
    else:
        NULL_ROWS.to_csv(rows, index=False)  # NULL: an empty field
    done = _mlflow_cli("predict", "-m", str(mlflow_model), "-i", str(rows), "-t", form, "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    got = [row["prediction"] for row in json.loads((tmp_path / "out").read_text())["predictions"]]
    np.testing.assert_allclose(got, _null_rows_expected(mlflow_model), rtol=1e-6)


def test_mlflow_models_serve_scores_nulls_of_every_kind_as_predict_rows(mlflow_model: Path, tmp_path: Path) -> None:
    """JSON scores as predict_rows does. CSV: MLflow's server reads it with the signature's pandas types, which
    the model's columns (typed Any) do not have: it refuses the body, and never scores a NULL as something else."""
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        process = _mlflow_cli("serve", "-m", str(mlflow_model), "-p", str(port), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(url, process, tmp_path / "serve.log")
        expected = _null_rows_expected(mlflow_model)
        for layout, orient in (("dataframe_split", {"orient": "split", "index": False}),
                               ("dataframe_records", {"orient": "records"})):
            body = {layout: json.loads(NULL_ROWS.to_json(**orient))}
            got = _predictions(requests.post(f"{url}/invocations", json=body, timeout=30))
            np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=layout)
        explained = requests.post(f"{url}/invocations", timeout=30, json={
            "dataframe_split": json.loads(NULL_ROWS.to_json(orient="split", index=False)), "params": {"explain": 2}})
        assert explained.status_code == 200, explained.text
        _assert_explained(pd.DataFrame(explained.json()["predictions"]), _explained(mlflow_model, NULL_ROWS, 2))
        csv = requests.post(f"{url}/invocations", data=NULL_ROWS.to_csv(index=False),
                            headers={"Content-Type": "text/csv"}, timeout=30)
        assert csv.status_code == 400 and "Failed to parse input as a Pandas DataFrame" in csv.text
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_mlflows_own_serving_example_scores(registered: str, mlflow_model: Path) -> None:
    body = (mlflow_model / "serving_input_example.json").read_bytes()  # NULL datetimes written as "NaT"
    got = _predictions(requests.post(f"{registered}/invocations", data=body,
                                     headers={"Content-Type": "application/json"}, timeout=30))
    assert len(got) == 2


@pytest.mark.parametrize(("body", "content_type", "status", "says"), [
    ("x,city\n1,oslo\n", "text/csv", 400, "the rows have no column 'member', 'signup', 'seen'"),
    ("x,city,member,signup,seen\nabc,oslo,true,2020-01-05,\n", "text/csv", 400,
     "column 'x': CSV conversion error to double: invalid value 'abc'"),
    ("x,city,member,signup,seen\n1,oslo,yes,2020-01-05,\n", "text/csv", 400,
     "column 'member': CSV conversion error to bool: invalid value 'yes'"),
    ("x,city,member,signup,seen\n1,oslo,true,someday,\n", "text/csv", 400,
     "column 'signup' (DATE): Failed to parse string: 'someday'"),
    ('[{"x": "abc", "city": "oslo", "member": true, "signup": null, "seen": null}]', "application/json", 400,
     "column 'x' (REAL): Failed to parse string: 'abc'"),
    ("0.5,oslo,true,2020-01-05,2021-01-01 10:00:00\n", "text/csv", 400,
     "the CSV body has no header row: its first line (0.5,oslo,true,2020-01-05,2021-01-01 10:00:00) names none "
     "of the model's columns; send a header row first, e.g. x,city,member,signup,seen"),
    ("x,city,member,signup,seen\n1,oslo,true,,\n1e400,oslo,true,,\n", "text/csv", 400,
     "column 'x' (REAL) has a value beyond float32's range (3.4e38) in row 2"),
    ('{"dataframe_records": [{"x": 1e39, "city": "oslo", "member": true, "signup": null, "seen": null}]}',
     "application/json", 400, "column 'x' (REAL) has a value beyond float32's range (3.4e38) in row 1"),
    ('{"rows": []}', "application/json", 400, "must be {\"dataframe_split\""),
    ("{", "application/json", 400, "the JSON body does not parse"),
    ("x", "text/plain", 415, "content type 'text/plain' is not accepted"),
])
def test_a_bad_request_gets_one_line(registered: str, body: str, content_type: str, status: int, says: str) -> None:
    response = requests.post(f"{registered}/invocations", data=body, headers={"Content-Type": content_type}, timeout=30)
    assert response.status_code == status
    assert says in response.text and response.text.count("\n") == 1, response.text
    assert "column #" not in response.text and "Check failed" not in response.text


@pytest.mark.parametrize("form", ["csv", "json"])
def test_each_row_counts_its_unseen_categories(registered: str, form: str) -> None:
    """The prediction is made (an unseen category is missing, as in training) and the row says how many it had."""
    body = {"data": CSV, "headers": {"Content-Type": "text/csv"}} if form == "csv" else \
        {"json": {"dataframe_records": json.loads(ROWS.to_json(orient="records"))}}
    response = requests.post(f"{registered}/invocations", timeout=30, **body)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [row["unseen_categories"] for row in rows] == [0, 0, 1, 0]  # paris; a NULL city is not unseen
    assert all(isinstance(row["prediction"], float) for row in rows)


def _explained(mlflow_model: Path, rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """What the model's own code explains."""
    from training.model.booster import explain_rows

    return explain_rows(*load(mlflow_model / "artifacts" / contract.MODEL_FILE), rows, k)


def _assert_explained(answer: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The answer's explanation fields are ``expected``'s: the same features, the same contributions (as JSON
    carries them)."""
    features = [c for c in expected.columns if c.endswith("_feature")]
    values = [c for c in expected.columns if c.endswith("_value")]
    assert answer[features].to_dict("records") == expected[features].to_dict("records")
    np.testing.assert_allclose(answer[values].to_numpy(dtype=float), expected[values].to_numpy(dtype=float), rtol=1e-9)


@pytest.mark.parametrize("ask", ["query", "custom-attributes"])
def test_rows_are_explained_alike_by_the_endpoint_and_the_mlflow_model(registered: str, mlflow_model: Path,
                                                                        ask: str) -> None:
    """explain=K: each row's K largest SHAP contributions, named as the table names the features, beside its
    prediction; asked for as a query parameter, or (what InvokeEndpoint passes on) in CustomAttributes."""
    import mlflow.pyfunc

    how = {"params": {"explain": 3}} if ask == "query" else \
        {"headers": {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "trace=1;explain=3"}}
    response = requests.post(f"{registered}/invocations", data=CSV, timeout=30,
                             **({"headers": {"Content-Type": "text/csv"}} | how))
    assert response.status_code == 200, response.text
    answer = pd.DataFrame(response.json()["predictions"])
    explanation = [f"shap_{i}_{part}" for i in (1, 2, 3) for part in ("feature", "value")]
    assert list(answer.columns) == ["prediction", "unseen_categories", *explanation]
    assert set(answer["shap_1_feature"]) <= set(PLAN.feature_names)
    _assert_explained(answer, _explained(mlflow_model, ROWS, 3))
    _assert_explained(answer, mlflow.pyfunc.load_model(str(mlflow_model)).predict(ROWS, params={"explain": 3}))
    plain = requests.post(f"{registered}/invocations", data=CSV, headers={"Content-Type": "text/csv"}, timeout=30)
    assert "shap_1_feature" not in plain.json()["predictions"][0]  # only when asked for


@pytest.mark.parametrize("value", ["6", "-1", "all"])
def test_an_explanation_beyond_the_features_gets_one_line(registered: str, value: str) -> None:
    response = requests.post(f"{registered}/invocations", data=CSV, params={"explain": value},
                             headers={"Content-Type": "text/csv"}, timeout=30)
    assert response.status_code == 400
    assert response.text == (f"explain={value!r} is not a whole number from 0 (no explanation) to 5 (the model's "
                             "feature count): give how many features to explain each row with\n")


def test_a_jobs_bare_model_file_serves_too(mlflow_model: Path, tmp_path: Path) -> None:
    model = contract.model_dir(tmp_path)
    model.mkdir()
    shutil.copy(mlflow_model / "artifacts" / contract.MODEL_FILE, model / contract.MODEL_FILE)
    for url in _serve(tmp_path):
        frame = pd.read_csv(io.StringIO(CSV))
        got = _predictions(requests.post(f"{url}/invocations", data=frame.to_csv(index=False),
                                         headers={"Content-Type": "text/csv"}, timeout=30))
        np.testing.assert_allclose(got, _expected(mlflow_model), rtol=1e-6)


def test_a_model_directory_without_a_model_stops_at_start_in_one_line(tmp_path: Path) -> None:
    contract.model_dir(tmp_path).mkdir()
    done = subprocess.run([sys.executable, "-m", "container", contract.SERVE_COMMAND], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, contract.BASE_DIR_ENV: str(tmp_path),
                                                       "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert "cannot serve:" in done.stdout and "holds neither xgboost-model" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _penguins_csv(rows: int = 300) -> str:
    """A user's CSV file shaped like palmer penguins: NULLs written as ``NA`` (R's way), empty or ``null``, in
    text and number columns alike, and a timestamp exported with its offset (``+00:00`` or ``Z``)."""
    rng = np.random.default_rng(5)
    lines = ["ID,SPECIES,BILL,FLIPPER,YEAR,SEX,SEEN,MASS"]
    for i in range(rows):
        species = rng.choice(["Adelie", "Gentoo", "Chinstrap"])
        bill, flipper, hours = rng.normal(44, 5), int(rng.normal(200, 14)), int(rng.integers(0, 5000))
        sex = ["female", "male", "NA", "", "null"][int(rng.choice(5, p=[0.42, 0.42, 0.08, 0.04, 0.04]))]
        mass = (20 * bill + 10 * flipper + 500 * (species == "Gentoo") + 400 * (sex == "male") - 300 * (sex == "NA")
                + hours / 5 + rng.normal(0, 50))
        seen = pd.Timestamp("2013-01-01", tz="UTC") + pd.Timedelta(hours=hours)
        seen_text = "NA" if i % 19 == 0 else str(seen) if i % 2 else seen.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(",".join([str(i), species, "NA" if i % 17 == 0 else f"{bill:.1f}", "NA" if i % 13 == 0
                               else str(flipper), str(2007 + i % 3), sex, seen_text, f"{mass:.0f}"]))
    return "\n".join(lines) + "\n"


def test_a_csv_row_from_the_training_file_scores_the_same_through_every_path(stack, run_job, tmp_path: Path) -> None:
    """``--data file.csv`` trains; rows copied from that file (NA, empty, null; timestamps with an offset) score
    as the job coded them through the endpoint, the MLflow model (pandas reads its CSV) and predict_rows."""
    data = tmp_path / "penguins.csv"
    data.write_text(_penguins_csv())
    datasets.write_data_file(data, tmp_path / "loaded.parquet")  # as train --local --data loads the file
    user_job.load_data_file(stack, "PENGUINS_CSV", tmp_path / "loaded.parquet")
    features = "SPECIES,BILL,FLIPPER,YEAR,SEX,SEEN"
    result = run_job({"table": "DEMO.PUBLIC.PENGUINS_CSV", "target": "MASS", "features": features, "num_round": "30",
                      "max_depth": "4", "shard_key": "ID", "collective_timeout": "60"})
    assert result.exit_code == 0, result.failure
    booster, plan = load(result.model_path)
    assert plan.vocabularies["SEX"] == ("female", "male")  # NA, empty and null are NULL, not a category
    assert {c.name: c.snowflake_type for c in plan.features}["SEEN"] == "TIMESTAMP_TZ"
    lines = data.read_text().splitlines()
    picked = [i for i, line in enumerate(lines[1:]) if "NA" in line or ",," in line or "null" in line][:12]
    body = "\n".join([lines[0], *(lines[1 + i] for i in picked)]) + "\n"
    conn = stack.connect()
    try:  # the job's own coding: the rows as the table holds them, cast as the job casts what it fetches
        cursor = conn.cursor()
        cursor.execute(f"SELECT {features} FROM PENGUINS_CSV WHERE ID IN ({','.join(map(str, picked))}) ORDER BY ID")
        table = cursor.fetch_arrow_all()
    finally:
        conn.close()
    job = booster.predict(scoring_matrix(plan, plan.feature_matrix({n: table.column(n) for n in table.column_names})))

    import mlflow
    import mlflow.pyfunc

    from training.tracking import pyfunc

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("round-trip", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    uri = pyfunc.log_model(client, run.info.run_id, experiment, "model", booster, plan, table, {})
    model = mlflow.pyfunc.load_model(uri)
    alone = next(k for k, i in enumerate(picked) if lines[1 + i].split(",")[5] in ("NA", "", "null"))
    single = f"{lines[0]}\n{lines[1 + picked[alone]]}\n"  # one row, its SEX NULL: pandas reads a float NaN column
    shutil.copytree(result.model_path.parent, contract.model_dir(tmp_path / "serve"))
    for url in _serve(tmp_path / "serve"):
        for rows, expected in ((body, job), (single, job[alone:alone + 1])):
            served = _predictions(requests.post(f"{url}/invocations", data=rows,
                                                headers={"Content-Type": "text/csv"}, timeout=30))
            by_mlflow = model.predict(pd.read_csv(io.StringIO(rows)))  # MLflow reads a CSV input with pandas
            by_rows = predict_rows(booster, plan, pd.read_csv(io.StringIO(rows)))
            for got in (served, by_mlflow["prediction"], by_rows["prediction"]):
                np.testing.assert_allclose(got, expected, rtol=1e-6)

"""Outputs published as one unit, private file modes, and clear errors for store, paths, encoding.

Each test names the failure of issue 7 it guards against; it fails if that behaviour comes back.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from retain import data, tracking
from retain.cli import EXIT_CONFIG, EXIT_NO_MODEL, EXIT_OUTPUT, EXIT_STORE, app
from retain.config import ReadOptions, TrackingConfig
from retain.contracts import ContractError
from retain.scoring import write_scores


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _ranked(as_of: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": range(1, n + 1),
            "as_of": pd.Timestamp(as_of),
            "customer_id": [f"c{i}" for i in range(n)],
            "value_at_risk": [3.0, 2.0, 1.0][:n],
        }
    )


def _publish(out: Path, as_of: str, keep_runs: int = 5) -> dict[str, Path]:
    ranked = _ranked(as_of)
    return write_scores(ranked, out, {"as_of": as_of, "customers_scored": len(ranked)}, keep_runs=keep_runs)


# --- one unit ---------------------------------------------------------------------------------


def test_a_run_is_published_by_switching_latest_and_old_paths_follow(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    first = _publish(out, "2025-01-01")
    second = _publish(out, "2025-02-01")
    assert first["run"] != second["run"] and first["run"].is_dir()
    assert os.readlink(out / "latest") == f"runs/{second['run'].name}"
    run = data.latest_run(out)
    assert run == second["run"].resolve()
    summary = json.loads((run / "score_summary.json").read_text())
    assert summary["as_of"] == "2025-02-01"
    assert summary["outputs"]["csv"] == str(out / "latest" / "ranked_customers.csv")
    # The file names of the old layout still read the latest run.
    assert pd.read_csv(out / "ranked_customers.csv")["as_of"].iloc[0] == "2025-02-01"
    assert pd.read_parquet(out / "ranked_customers.parquet")["as_of"].iloc[0] == pd.Timestamp("2025-02-01")
    # The previous run is untouched: a reader who resolved `latest` before the switch still has it.
    assert pd.read_csv(first["run"] / "ranked_customers.csv")["as_of"].iloc[0] == "2025-01-01"


def test_a_rerun_writes_byte_identical_files(tmp_path: Path) -> None:
    a = _publish(tmp_path / "out", "2025-01-01")
    b = _publish(tmp_path / "out", "2025-01-01")
    for name in ("ranked_customers.csv", "ranked_customers.parquet", "score_summary.json"):
        assert (a["run"] / name).read_bytes() == (b["run"] / name).read_bytes()


def test_old_runs_beyond_keep_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = [_publish(out, f"2025-0{m}-01", keep_runs=2)["run"] for m in range(1, 5)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [r.name for r in runs[-2:]]


def test_replacing_the_outputs_one_by_one_is_gone_a_failed_run_leaves_the_previous_list(
    tmp_path: Path,
) -> None:
    """Issue 7: the three outputs were replaced one by one; a crash after the Parquet mixed dates."""
    out = tmp_path / "out"
    _publish(out, "2025-01-01")

    def crash(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("killed between the output files")

    writers = {
        "ranked_customers.parquet": data.frame_writer(_ranked("2025-02-01"), "parquet"),
        "ranked_customers.csv": crash,
    }
    with pytest.raises(RuntimeError):
        data.publish_run(out, writers)
    run = data.latest_run(out)
    assert run is not None
    assert pd.read_parquet(run / "ranked_customers.parquet")["as_of"].iloc[0] == pd.Timestamp("2025-01-01")
    assert json.loads((run / "score_summary.json").read_text())["as_of"] == "2025-01-01"
    assert [p.name for p in (out / "runs").iterdir()] == [run.name]  # no half-written run left


def test_leftovers_of_a_killed_run_are_removed_at_the_next_start(tmp_path: Path) -> None:
    """Issue 7: an empty `.tmp` file stayed behind after a kill."""
    out = tmp_path / "out"
    _publish(out, "2025-01-01")
    dead = _dead_pid()
    stale_file = out / f".ranked_customers.csv.pid{dead}.k2j4.tmp"
    stale_file.touch()
    stale_run = out / "runs" / f".20250101T000000.000000Z.pid{dead}.tmp"
    stale_run.mkdir()
    (stale_run / "ranked_customers.parquet").write_text("")
    live = out / f".ranked_customers.csv.pid{os.getpid()}.abcd.tmp"  # a writer still running
    live.touch()
    _publish(out, "2025-02-01")
    assert not stale_file.exists() and not stale_run.exists()
    assert live.exists()


def test_atomic_write_removes_a_dead_writers_empty_tmp_file(tmp_path: Path) -> None:
    stale = tmp_path / f".customers.csv.pid{_dead_pid()}.x1y2.tmp"
    stale.touch()
    data.write_frame(pd.DataFrame({"a": [1]}), tmp_path / "customers.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv"]


def test_named_units_in_one_directory_are_published_independently(tmp_path: Path) -> None:
    """`retain text score` publishes each output file and its summary as its own unit."""

    def text(value: str) -> dict[str, object]:
        return {"scores.csv": lambda p: p.write_text(value), "scores_summary.json": lambda p: p.write_text(value)}

    data.publish_run(tmp_path, text("a1"), unit="scores")
    data.publish_run(tmp_path, {"other.csv": lambda p: p.write_text("b1")}, unit="other")
    data.publish_run(tmp_path, text("a2"), unit="scores")
    assert (tmp_path / "scores.csv").read_text() == (tmp_path / "scores_summary.json").read_text() == "a2"
    assert (tmp_path / "other.csv").read_text() == "b1"
    run = data.latest_run(tmp_path, "scores")
    assert run is not None and run.parent.name == "scores.runs"
    assert (run / "scores.csv").read_text() == "a2"
    assert os.readlink(tmp_path / "scores.latest").startswith("scores.runs/")


# --- file modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "mode"), [("", 0o600), ("1", 0o640)])
def test_files_holding_customer_data_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, mode: int
) -> None:
    """Issue 7: output, quarantine and store files were world-readable."""
    monkeypatch.setenv(data.GROUP_READABLE_ENV, group)
    old = os.umask(0o000)
    try:
        run = _publish(tmp_path / "out", "2025-01-01")["run"]
        raw = pd.DataFrame({"customer_id": ["1", None], "signup_at": ["2024-01-01", "2024-01-02"]})
        from retain.contracts import CONTRACTS, validate_table

        report = validate_table(raw, CONTRACTS["customers"], source="customers.csv")
        data.write_quarantine_files({"customers": report}, tmp_path / "quarantine")
        store = tmp_path / "store" / "mlflow.db"
        store.parent.mkdir()
        tracking.open_store(TrackingConfig(tracking_uri=f"sqlite:///{store}"))
    finally:
        os.umask(old)
    files = [
        *(run / n for n in ("ranked_customers.csv", "ranked_customers.parquet", "score_summary.json")),
        tmp_path / "quarantine" / "customers.csv",
        store,
    ]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    artifacts = 0o750 if group else 0o700
    assert stat.S_IMODE((store.parent / "mlartifacts").stat().st_mode) == artifacts


# --- clear errors -----------------------------------------------------------------------------


def _invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def _score_config(tmp_path: Path, uri: str) -> Path:
    config = tmp_path / "score.yaml"
    config.write_text(
        f"data: {{path: {tmp_path / 'world'}}}\n"
        f"tracking: {{tracking_uri: '{uri}'}}\n"
        f"scoring: {{output_dir: {tmp_path / 'out'}}}\n"
    )
    return config


def test_output_dir_under_a_file_is_an_error_line(tmp_path: Path) -> None:
    """Issue 7: an `output_dir` under a file ended in a traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = _invoke("synth", "--out", str(blocker / "world"), "--customers", "10", "-q")
    assert result.exit_code == EXIT_OUTPUT, result.output
    assert f"error: {blocker / 'world'}: cannot create the output directory, {blocker} is a file" in result.output
    with pytest.raises(data.OutputError, match="is a file"):
        _publish(blocker / "out", "2025-01-01")


def test_a_misspelled_tracking_scheme_is_a_config_error(tmp_path: Path) -> None:
    """Issue 7: an `htp://` tracking URI ended in a traceback."""
    result = _invoke("score", "-c", str(_score_config(tmp_path, "htp://localhost:5000")), "-q")
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "error: tracking.tracking_uri 'htp://localhost:5000': 'htp' is not a tracking store scheme" in result.output


def test_a_store_in_a_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    """Issue 7: a tracking URI in a missing directory silently created a new empty store."""
    uri = f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}"
    result = _invoke("score", "-c", str(_score_config(tmp_path, uri)), "-q")
    assert result.exit_code == EXIT_CONFIG, result.output
    assert f"the directory {tmp_path / 'typo'} does not exist" in result.output
    assert not (tmp_path / "typo").exists()
    with pytest.raises(Exception, match="does not exist"):
        tracking.open_store(TrackingConfig(tracking_uri=uri), create=True)
    assert not (tmp_path / "typo").exists()


def test_scoring_against_a_store_that_does_not_exist_says_train_first(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _invoke("score", "-c", str(_score_config(tmp_path, uri)), "-q")
    assert result.exit_code == EXIT_NO_MODEL, result.output
    assert "no MLflow store at" in result.output and "run `retain train`" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_a_corrupted_store_is_an_error_line(tmp_path: Path) -> None:
    """Issue 7: a corrupted `mlflow.db` ended in a traceback."""
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database " * 100)
    result = _invoke("score", "-c", str(_score_config(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")), "-q")
    assert result.exit_code == EXIT_STORE, result.output
    assert "not an SQLite database (damaged or overwritten); restore it from a backup" in result.output


def test_a_store_damaged_past_its_header_is_an_error_line(tmp_path: Path) -> None:
    """Issue 7 (found again on int2): pages overwritten inside a store with an intact header
    passed the header check and ended in a traceback (`database disk image is malformed`) at
    the first query that read them."""
    import sqlite3

    database = tmp_path / "mlflow.db"
    track = TrackingConfig(tracking_uri=f"sqlite:///{database}")
    tracking.open_store(track)
    with sqlite3.connect(database) as connection:  # pages MLflow's own opening check never reads
        connection.execute("CREATE TABLE filler (x TEXT)")
        connection.executemany("INSERT INTO filler VALUES (?)", [("x" * 200,)] * 2000)
    connection.close()
    size = database.stat().st_size
    with open(database, "r+b") as handle:
        handle.seek(size - 100_000)
        handle.write(b"\x00" * 50_000)
    tracking._OPENED.discard(track.tracking_uri)
    result = _invoke("score", "-c", str(_score_config(tmp_path, track.tracking_uri)), "-q")
    assert result.exit_code == EXIT_STORE, result.output
    assert f"error: {database}: damaged" in result.output
    assert "restore it from a backup" in result.output


def test_a_removed_artifact_folder_is_an_error_line(tmp_path: Path) -> None:
    """Issue 7: a removed artifact folder ended in a traceback."""
    import shutil

    from sklearn.linear_model import LogisticRegression

    track = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with tracking.tracked_run(track, "churn") as run:
        uri = run.log_model(model, "churn")
    version = tracking.register_model(track, uri, track.churn_model)
    tracking.crown_without_evidence(track, track.churn_model, version, "test")
    shutil.rmtree(tmp_path / "mlartifacts")
    result = _invoke("score", "-c", str(_score_config(tmp_path, track.tracking_uri)), "-q")
    assert result.exit_code == EXIT_STORE, result.output
    assert f"error: model {track.churn_model} version {version}: its files cannot be read" in result.output
    assert "restore the artifact folder" in result.output


def test_a_latin1_file_names_the_line_and_the_encoding_setting(tmp_path: Path) -> None:
    """Issue 7: a latin-1 file failed without a line number or an encoding option."""
    path = tmp_path / "customers.csv"
    path.write_bytes("customer_id,signup_at,plan\n1,2024-01-01,basic\n2,2024-01-02,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ContractError, match=r"line 3 \(byte 62 of the file\) is not utf-8 text") as caught:
        data.read_frame(path)
    assert "data.read.<table>.encoding" in str(caught.value)
    assert data.read_frame(path, ReadOptions(encoding="latin-1"))["plan"].tolist() == ["basic", "café"]


def test_help_gives_a_scheduler_the_exit_codes_and_the_new_flags() -> None:
    """Issue 7 asks for documented exit codes: `retain --help` is where a scheduler's author looks."""
    top = " ".join(_invoke("--help").output.split())
    for code, meaning in ((2, "config"), (3, "input data"), (4, "no champion"), (5, "store"), (6, "output"), (7, "sha256")):
        assert f"{code} " in top and meaning in top, (code, top)
    assert "When things go wrong" in top
    for command, flags in (("train", ["--warnings-fatal"]), ("score", ["--warnings-fatal", "--force-as-of"])):
        text = _invoke(command, "--help").output
        assert all(flag in text for flag in flags), (command, text)


@pytest.mark.parametrize("mixed", [False, True])
def test_csv_reads_back_as_pandas_would_write_it(tmp_path: Path, mixed: bool) -> None:
    """The fast CSV writer: text with commas, quotes and newlines, missing values, dates and
    booleans read back as from ``DataFrame.to_csv``; a column of mixed objects too (pandas
    writes that frame)."""
    frame = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "as_of": pd.to_datetime(["2025-02-01"] * 3),
            "last_contacted_at": [pd.Timestamp("2025-01-03 10:30"), pd.NaT, pd.Timestamp("2024-12-01")],
            "customer_id": ["C1", "0042", "C,3"],
            "reason_1": ['said "never again", twice', None, "line one\nline two"],
            "probability": [0.1, 1 / 3, 2e-9],
            "control": [True, False, True],
        }
    )
    if mixed:
        frame["mixed"] = [1, "two", None]
    data.write_csv(frame, tmp_path / "fast.csv")
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    fast = pd.read_csv(tmp_path / "fast.csv", dtype={"customer_id": str})
    slow = pd.read_csv(tmp_path / "pandas.csv", dtype={"customer_id": str})
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["customer_id"].tolist() == ["C1", "0042", "C,3"]
    assert fast["as_of"].iloc[0] == "2025-02-01"
    # Arrow's writer quotes every text value; pandas only those that need it
    assert ('"C1"' in (tmp_path / "fast.csv").read_text()) is not mixed

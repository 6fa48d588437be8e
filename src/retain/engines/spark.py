"""``retain score --engine spark``: the scoring path on a Spark cluster, the same list as the pandas engine.

Design
------
Scoring has two stages (:mod:`retain.scoring`). Stage one (:func:`~retain.scoring.score_customers`:
text scores, features, churn probability, purchase value) reads one customer's rows only, so
it runs per partition of customers; stage two (:func:`~retain.scoring.rank_scored`: value-at-risk
order, reasons read against the whole population, control group, playbook) needs everyone and
runs on the driver. The Spark engine keeps the pandas code of both; Spark only moves the rows.

On the cluster, per partition (customers split by ``pmod(xxhash64(id), P)``, the id normalised
as the contract normalises it, so ``1001``, ``1001.0`` and `` 1001`` meet):

1. **pack** (one ``applyInPandas`` per table): the table's rows of the partition, in input
   order (file, then ``_metadata.row_index``), as one pandas frame. Four tables do not fit
   ``cogroup`` (two at most) and a union of their columns would carry millions of empty cells;
   one pickled frame per (partition, table) meets the others in the next step instead.
2. **validate** (``applyInPandas`` over the packs): :func:`retain.data.load_world` on the
   partition's four tables (written to a temporary directory of the worker, as Parquet), so the contract, the unknown-customer and before-signup checks and
   the export time (fixed once on the driver) are the pandas engine's own code. It returns the
   validated world (kept, ``persist``), per table the rows used and the rejected and amended
   rows with their global input row number and reason.
3. **purchase value** (``mapInPandas`` over the validated worlds, with ``scoring.purchase_value:
   probabilistic``): each buyer's purchase history (``insight.value.purchase_summary``, four
   numbers) to the driver, which, when some customer has no monthly value, fits BG/NBD and
   Gamma-Gamma once on all of them (:func:`~retain.scoring.purchase_value_model`) and hands the
   fitted models to the next step: every partition values its customers with the whole log's
   models (a fit per partition would differ from one partition to the next).
4. **score** (``mapInPandas`` over the validated worlds): :func:`~retain.scoring.score_customers`
   with the fitted models, broadcast once (the "equivalent" of ``mlflow.pyfunc.spark_udf``: one
   call scores a partition's text, features and churn together, as the pandas engine does). It
   returns customer id, probability, purchase value, segment/region/plan and the churn model's
   input features, written as Parquet partitioned by the key under
   ``<scoring.output_dir>/spark/<as_of>/customer_scores/``.

On the driver: the rejected rows per table (the quarantine files, the quarantine-share check and
the run summary's ``rejected_input_rows``, as the pandas engine), the scoring date (it needs the
newest valid row, so validation comes before scoring), the per-customer scores read back as
:class:`~retain.scoring.CustomerScores` in the customers table's order, then the tickets and
feedback of the explained customers only (filtered on the cluster), and :func:`rank_scored`.

A partition travels as one binary cell (Spark's limit: 2 GB): with tens of millions of events,
raise ``scoring.spark.partitions`` (32 for the 1,000,000-customer world) and the driver's memory.

What the pandas engine checks across a whole table and a partition cannot see is checked on the
whole table in Spark first, or refused: a ticket or feedback id shared by customers of two
partitions (which row is the first?), dates written day and month first in text columns
without ``data.read.<table>.date_format`` (the order is inferred per column), extra customer
columns used as attributes stored as text (their type is inferred per column).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retain import data
from retain.config import ConfigError, DataConfig, ScoreConfig, SparkConfig
from retain.contracts import CONTRACTS, TIME_COLUMNS, ContractError, Validated, World
from retain.insight.value import SUMMARY_COLUMNS
from retain.outreach.ranking import CUSTOMER_ATTRIBUTES
from retain.scoring import (
    RECENT_SPEND,
    CustomerScores,
    PurchaseValue,
    ScoringError,
    ScoringModels,
    explained_customers,
    feedback_scores,
    needs_purchase_value,
    purchase_histories,
    purchase_value_model,
    rank_scored,
    score_customers,
    text_window,
)
from retain.timing import stage

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from retain.config import Playbook

logger = logging.getLogger(__name__)

INSTALL_HINT = "install it with `pip install 'retain[spark]'` (or `pip install 'pyspark>=3.5'`)"
PART = "__retain_part"
ROW = "__retain_row"
#: The per-customer output's partition column (a name pyarrow does not skip, unlike ``_...``),
#: the customer's row in the customers table (the pandas engine's order) and whether the
#: partition had purchase amounts (``purchase_value`` is then meant, else None).
PARTITION = "customer_partition"
ORDER = "customers_row"
PURCHASES_KNOWN = "purchase_value_known"
#: The validate stage's rows: a validated world, a table's counts, or one rejected/amended row.
#: Timestamps in nanoseconds travel as text: Spark hands a long column with nulls to pandas as float.
REPORT_SCHEMA = (
    f"{PART} int, kind string, table string, source_row long, reason string, row string, "
    "n_valid long, latest string, earliest string, payload binary"
)
_SHARED_KEYS = {"tickets": "ticket_id", "feedback": "feedback_id"}
#: Per partition: each buyer's purchase history (BG/NBD's summary), and one row (no customer id)
#: saying whether the part has purchase amounts and customers without a monthly value.
HISTORY_SCHEMA = (
    "customer_id string, frequency double, recency double, T double, monetary_value double, "
    "has_amounts boolean, needs_value boolean"
)


@dataclass(frozen=True)
class SparkTable:
    """One input table as Spark reads it, with ``PART`` and ``ROW`` columns."""

    rows: DataFrame
    #: Contract timestamp columns stored in nanoseconds, passed on as text (see :func:`read_table`).
    nanos: tuple[str, ...] = ()


@dataclass
class SparkScoring:
    """What ``jobs.run_score`` needs from a Spark run, as the pandas engine gives it."""

    ranked: pd.DataFrame
    #: The customers (id and attributes) and the explained customers' tickets and feedback:
    #: what publishing reads (``jobs.publish_scores``).
    world: World
    as_of_chosen: str
    rejected: dict[str, int]
    warnings: tuple[str, ...]
    customer_scores: str
    #: Every customer's features and probability, as read back on the driver (what monitoring reads).
    scores: CustomerScores | None = None


def score_on_spark(
    config: ScoreConfig,
    models: ScoringModels,
    theme_ids: list[str],
    playbook: Playbook,
    choose_as_of: Callable[[pd.Timestamp], tuple[pd.Timestamp, str]],
    contacts: pd.DataFrame | None = None,
    spark: SparkSession | None = None,
) -> SparkScoring:
    """Validate, score and rank the world of ``config.data`` on Spark; the pandas engine's list.

    ``choose_as_of`` turns the end of the valid data into the scoring date and how it was chosen
    (``jobs.score_date``). ``spark``: a session to run in (left running); default the active
    session, else a new one from ``scoring.spark``, stopped at the end.

    Raises
    ------
    ConfigError
        pyspark or Java is missing, the data is a flat table or not Parquet.
    ContractError
        The data breaks its contract as ``data.load_world`` says, or in a way a partition cannot
        see (see the module docstring).
    """
    if config.data.layout != "tables":
        raise ConfigError(
            f"data.layout is {config.data.layout!r}: the Spark engine scores dated tables "
            "(layout: tables); score a flat table with --engine pandas"
        )
    spark = spark or _pyspark().sql.SparkSession.getActiveSession()
    own = spark is None
    session = spark or spark_session(config.scoring.spark)
    try:
        return _score(session, config, models, theme_ids, playbook, choose_as_of, contacts)
    except _pyspark().errors.PySparkException as exc:
        raise _retain_error(exc) or exc from None
    finally:
        if own:
            session.stop()


_WORKER_ERROR = re.compile(r"retain\.\w+\.(ContractError|ScoringError): (.*)")


def _retain_error(exc: Exception) -> Exception | None:
    """A ContractError or ScoringError a partition raised, out of the Python worker's traceback."""
    found = _WORKER_ERROR.findall(str(exc))
    if not found:
        return None
    kind, message = found[-1]
    return ContractError(message) if kind == "ContractError" else ScoringError(message)


def spark_session(settings: SparkConfig) -> SparkSession:
    """A Spark session for scoring: UTC, Arrow, nanosecond Parquet timestamps read as numbers.

    ``PYSPARK_PYTHON`` (this interpreter) and ``SPARK_LOCAL_IP`` (127.0.0.1) are set when unset,
    so local mode needs nothing from the user.

    Raises
    ------
    ConfigError
        pyspark is not installed or there is no Java to run it.
    """
    SparkSession = _pyspark().sql.SparkSession
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError(
            "the Spark engine needs Java 17 or later (java on PATH or $JAVA_HOME): install a JDK, "
            "e.g. `apt-get install openjdk-17-jre-headless`"
        )
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # pandas writes nanosecond timestamps, which Spark cannot read as timestamps.
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.sql.shuffle.partitions": str(settings.partitions),
        "spark.ui.showConsoleProgress": "false",
        **settings.conf,
    }
    builder = SparkSession.builder.master(settings.master).appName("retain score")
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _quiet_pyspark() -> None:
    """PySpark warns on every conversion that it does not fully support pandas 3 yet; once is enough."""
    warnings.filterwarnings("once", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


def _pyspark() -> Any:
    _quiet_pyspark()
    try:
        import pyspark
        import pyspark.errors
        import pyspark.sql
    except ImportError as exc:
        raise ConfigError(f"the Spark engine needs pyspark, which is not installed: {INSTALL_HINT}") from exc
    return pyspark


def _score(
    spark: SparkSession,
    config: ScoreConfig,
    models: ScoringModels,
    theme_ids: list[str],
    playbook: Playbook,
    choose_as_of: Callable[[pd.Timestamp], tuple[pd.Timestamp, str]],
    contacts: pd.DataFrame | None,
) -> SparkScoring:
    F = _pyspark().sql.functions
    settings = config.scoring.spark
    # Also in a session the caller made: naive timestamps are UTC, pandas' nanoseconds readable.
    for key, value in (("spark.sql.session.timeZone", "UTC"), ("spark.sql.legacy.parquet.nanosAsLong", "true")):
        spark.conf.set(key, value)
    locations = table_locations(spark, config.data, settings)
    tables = {name: read_table(spark, name, where, config.data, settings.partitions) for name, where in locations.items()}
    check_whole_tables(tables, config)
    exported = data.export_time(config.data)
    validated = validate_partitions(tables, config.data, exported).persist()
    try:
        with stage("spark: read and validate"):
            counts = validated.where(F.col("kind") != "world").drop("payload").toPandas()
            reports, warnings = _reports(counts, locations, config.data)
        when, how = choose_as_of(_data_end(counts))
        logger.info("scoring as of %s (%s) on Spark, %d partitions", when.date(), how, settings.partitions)
        worlds = validated.where(F.col("kind") == "world").select(PART, "payload")
        categorical = categorical_inputs(models.churn, config.features.attributes)
        features = [*models.churn.feature_names_in_]
        features += [] if "monthly_value" in features else ["monthly_value"]
        with stage("spark: purchase value"):
            valuation = _purchase_value(worlds, when, config)
        scored = worlds.mapInPandas(
            _score_partitions(
                # the monitoring reference is read on the driver only
                spark.sparkContext.broadcast(replace(models, reference=None)), when, theme_ids, config, features, categorical,
                valuation,
            ),
            _scores_schema(features, categorical),
        )
        where = customer_scores_path(config.scoring.output_dir, when)
        output = scored.withColumnRenamed(PART, PARTITION)
        with stage("spark: text, features, churn probability"):
            output.write.mode("overwrite").partitionBy(PARTITION).parquet(where)
            # With its schema: a run that scores nobody writes no file to infer it from.
            written = spark.read.schema(output.schema).parquet(where).toPandas()
            scores = _customer_scores(written, when, features, categorical, valuation.basis)
        if scores.table.empty:
            signups = counts.loc[(counts["kind"] == "count") & (counts["table"] == "customers")]
            first = pd.Timestamp(min(int(n) for n in signups["earliest"].dropna()))
            last = pd.Timestamp(max(int(n) for n in signups["latest"].dropna()))
            raise ScoringError(
                f"no customer is in the population as of {when.date()} (signed up on or before it and "
                f"not churned or lost by then); the customers signed up from {first} to {last}"
            )
        with stage("spark: explained customers' rows"):
            world = _explained_world(spark, worlds, scores, config, locations)
            if world.feedback is not None and (models.sentiment is not None or models.themes is not None):
                window = text_window(world.feedback, when, config.features)
                scores.text_scores = feedback_scores(window, models, theme_ids, config.features)
        ranked = rank_scored(
            scores, when, models, config.features, config.scoring, playbook, world, contacts=contacts
        )
    finally:
        validated.unpersist()
    return SparkScoring(
        ranked=ranked,
        world=world,
        as_of_chosen=how,
        rejected={name: len(report.rejected) for name, report in reports.items()},
        warnings=warnings,
        customer_scores=where,
        scores=scores,
    )


def customer_scores_path(output_dir: Path, as_of: pd.Timestamp) -> str:
    """Where a Spark run writes its per-customer scores (Parquet, partitioned by the id hash)."""
    return str(Path(output_dir).absolute() / "spark" / f"{as_of:%Y-%m-%d}" / "customer_scores")


# --- reading -----------------------------------------------------------------------------------


def table_locations(spark: SparkSession, config: DataConfig, settings: SparkConfig) -> dict[str, str]:
    """Where each table present is: ``scoring.spark.data_uri`` (any URI Spark reads) or data.path.

    Raises
    ------
    ConfigError
        A table is not Parquet.
    ContractError
        The customers table (or a table named in ``data.files``) is missing.
    """
    required = {"customers": not config.customers_from_events}
    found: dict[str, str] = {}
    for name in ("customers", *data.OPTIONAL_TABLES):
        if settings.data_uri is None:
            path = data.table_path(config, name, required=required.get(name, False))
            if path is not None and path.suffix != ".parquet":
                raise ConfigError(
                    f"{path}: the Spark engine reads Parquet tables; convert it (e.g. `retain synth "
                    "--format parquet`, or pandas' to_parquet) or score with --engine pandas"
                )
            if path is not None:
                found[name] = str(path.absolute())
            continue
        where = f"{settings.data_uri.rstrip('/')}/{config.files.get(name, f'{name}.parquet')}"  # type: ignore[call-overload]
        if _readable(spark, where):
            found[name] = where
        elif required.get(name, False) or name in config.files:
            raise ContractError(f"{where}: Spark cannot read the {name} table there (scoring.spark.data_uri)")
    return found


def _readable(spark: SparkSession, where: str) -> bool:
    try:
        spark.read.parquet(where).schema  # noqa: B018 (reading the footer is the test)
    except _pyspark().errors.PySparkException:  # a missing path is an AnalysisException
        return False
    return True


def read_table(spark: SparkSession, name: str, where: str, config: DataConfig, partitions: int) -> SparkTable:
    """One table as Spark reads it, with its partition key and input row number (1-based).

    A contract timestamp column stored in nanoseconds arrives as a number (Spark reads no
    nanoseconds) and is passed on as text, so pandas reads it back exactly.
    """
    F = _pyspark().sql.functions
    frame = spark.read.parquet(where)
    mapping = config.columns.get(name, {})  # type: ignore[call-overload]
    nanos = [
        mapping.get(c.name, c.name) for c in CONTRACTS[name].columns
        if c.kind == "timestamp" and dict(frame.dtypes).get(mapping.get(c.name, c.name)) == "bigint"
    ]
    customer = mapping.get("customer_id", "customer_id")
    located = frame.select(
        *[F.col(f"`{c}`").cast("string").alias(c) if c in nanos else F.col(f"`{c}`") for c in frame.columns],
        F.col("_metadata.file_path").alias("__file"),
        F.col("_metadata.row_index").alias("__index"),
    )
    rows = located.select(
        *[F.col(f"`{c}`") for c in frame.columns],
        partition_key(F.col(f"`{customer}`"), partitions).alias(PART) if customer in frame.columns else F.lit(0).alias(PART),
        _row_numbers(located).alias(ROW),
    )
    return SparkTable(rows, tuple(nanos))


def partition_key(customer_id: Column, partitions: int) -> Column:
    """``pmod(xxhash64(id), partitions)`` of the id as the contract reads it (stripped, ``1001.0`` as ``1001``)."""
    F = _pyspark().sql.functions
    text = F.regexp_replace(customer_id.cast("string"), r"(?U)^\s+|\s+$", "")
    normalised = F.regexp_replace(text, r"^([+-]?\d+)\.0*$", "$1")
    return F.pmod(F.xxhash64(normalised), F.lit(partitions)).cast("int")


def _row_numbers(located: DataFrame) -> Column:
    """Input row numbers across the table's files in path order, as pandas reads a directory."""
    F = _pyspark().sql.functions
    files = located.inputFiles()
    if len(files) <= 1:
        return F.col("__index") + 1
    sizes = sorted((r["__file"], r["count"]) for r in located.groupBy("__file").count().collect())
    offsets: list[Any] = []
    start = 0
    for file, size in sizes:
        offsets += [F.lit(file), F.lit(start)]
        start += size
    return F.create_map(*offsets)[F.col("__file")] + F.col("__index") + 1


def check_whole_tables(tables: dict[str, SparkTable], config: ScoreConfig) -> None:
    """Refuse what a partition cannot check the way the pandas engine checks the whole table.

    First the table-level contract (columns, mapping, near misses) on the tables' columns alone,
    with ``data.load_world``'s own messages.

    Raises
    ------
    ContractError
        Naming the table, the column or the ids, and what to do.
    """
    F = _pyspark().sql.functions
    _check_columns(tables, config.data)
    for name, table in tables.items():
        frame = table.rows
        mapping = config.data.columns.get(name, {})  # type: ignore[call-overload]
        options = config.data.read.get(name)  # type: ignore[call-overload]
        types = dict(frame.dtypes)
        for column in CONTRACTS[name].columns:
            theirs = mapping.get(column.name, column.name)
            if column.kind != "timestamp" or theirs in table.nanos:
                continue
            if types.get(theirs) == "string" and not (options and options.date_format):
                slashed = frame.where(F.col(f"`{theirs}`").rlike(r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b")).limit(1).count()
                if slashed:
                    raise ContractError(
                        f"table '{name}', column '{theirs}': dates written day and month first; the "
                        f"Spark engine reads them only with data.read.{name}.date_format set (e.g. "
                        "'%d/%m/%Y'), as their order is otherwise inferred from the whole column"
                    )
    _check_attributes(tables, config)
    for name, key in _SHARED_KEYS.items():
        if name not in tables:
            continue
        theirs = config.data.columns.get(name, {}).get(key, key)  # type: ignore[call-overload]
        ids = F.regexp_replace(F.col(f"`{theirs}`").cast("string"), r"(?U)^\s+|\s+$", "")
        shared = (
            tables[name].rows.groupBy(ids.alias("id")).agg(F.countDistinct(PART).alias("parts"))
            .where(F.col("parts") > 1).limit(3).collect()
        )
        if shared:
            raise ContractError(
                f"table '{name}': {key} {', '.join(repr(r['id']) for r in shared)} ... belong to "
                "customers scored in different partitions, so the Spark engine cannot tell which "
                f"row comes first; make {key} unique or score with --engine pandas"
            )


def _check_columns(tables: dict[str, SparkTable], config: DataConfig) -> None:
    """``data.load_world`` on the tables' columns alone (no rows): its column errors, its words."""
    with tempfile.TemporaryDirectory(prefix="retain-spark-") as tmp:
        names = {}
        for name, table in tables.items():
            empty = table.rows.drop(PART, ROW).limit(0).toPandas()
            empty.to_parquet(Path(tmp) / f"{name}.parquet")
            names[str(Path(tmp) / f"{name}.parquet")] = name
        quiet = logging.getLogger("retain.data")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the tables have no rows here, on purpose
        try:
            data.load_world(_partition_config(config, Path(tmp), data.export_time(config)), write_quarantine=False)
        except ContractError as exc:
            message = str(exc)
            for path, name in names.items():
                message = message.replace(path, f"table '{name}'")
            raise ContractError(message) from None
        finally:
            quiet.setLevel(level)


def _check_attributes(tables: dict[str, SparkTable], config: ScoreConfig) -> None:
    if "customers" not in tables:
        return
    contract = CONTRACTS["customers"].column_names
    mapped = set(config.data.columns.get("customers", {}).values())  # type: ignore[call-overload]
    extra = {c: t for c, t in tables["customers"].rows.dtypes if c not in contract and c not in mapped and c not in (PART, ROW)}
    wanted = list(extra) if config.features.attributes == "all" else list(config.features.attributes)
    text = [c for c in wanted if extra.get(c) == "string"]
    if text:
        raise ContractError(
            f"customers: attribute column(s) {text} are stored as text, whose type the pandas engine "
            "infers from the whole column; store them typed in the Parquet file (numbers as numbers), "
            "or score with --engine pandas"
        )


# --- the partitions ----------------------------------------------------------------------------


def validate_partitions(tables: dict[str, SparkTable], config: DataConfig, exported: pd.Timestamp) -> DataFrame:
    """Pack each table per partition, then validate each partition's four tables (``REPORT_SCHEMA``)."""
    packs = [
        table.rows.groupBy(PART).applyInPandas(_pack(name), f"{PART} int, table string, payload binary")
        for name, table in tables.items()
    ]
    packed = packs[0]
    for more in packs[1:]:
        packed = packed.unionByName(more)
    empty = {name: table.rows.drop(PART, ROW).limit(0).toPandas() for name, table in tables.items()}
    nanos = {name: table.nanos for name, table in tables.items()}
    return packed.groupBy(PART).applyInPandas(_validate(config, exported, empty, nanos), REPORT_SCHEMA)


def _pack(table: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def pack(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.sort_values(ROW, kind="stable")
        raw = rows.drop(columns=[PART, ROW]).reset_index(drop=True)
        payload = pickle.dumps((raw, rows[ROW].to_numpy(dtype="int64")), protocol=5)
        return _for_arrow(pd.DataFrame({PART: [int(rows[PART].iloc[0])], "table": [table], "payload": [payload]}))

    return pack


def _partition_config(config: DataConfig, directory: Path, exported: pd.Timestamp) -> DataConfig:
    """The data config of one partition's tables, written to ``directory`` as ``<table>.parquet``.

    The export time is the run's (fixed on the driver); the quarantine share and fatal warnings
    are judged on whole tables, on the driver.
    """
    return config.model_copy(update={
        "path": directory, "files": {}, "quarantine_dir": None, "max_quarantine_share": 1.0,
        "warnings_fatal": False, "export_time": exported.to_pydatetime(),
    })


def _validate(
    config: DataConfig, exported: pd.Timestamp, empty: dict[str, pd.DataFrame], nanos: dict[str, tuple[str, ...]]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def validate(packed: pd.DataFrame) -> pd.DataFrame:
        _quiet_pyspark()
        logging.getLogger("retain").setLevel(logging.ERROR)  # the driver reports whole tables
        part = int(packed[PART].iloc[0])
        raws = {t: pickle.loads(p) for t, p in zip(packed["table"], packed["payload"], strict=True)}
        with tempfile.TemporaryDirectory(prefix="retain-spark-") as tmp:
            for name, frame in empty.items():
                raw, _ = raws.get(name, (frame, None))
                raw = raw.assign(**{column: _from_nanos(raw[column]) for column in nanos[name]})
                raw.to_parquet(Path(tmp) / f"{name}.parquet")
            loaded = data.load_world(_partition_config(config, Path(tmp), exported), write_quarantine=False)
        rows = {name: raws.get(name, (None, np.empty(0, dtype="int64")))[1] for name in empty}
        out = [_table_report(part, name, report, rows[name]) for name, report in loaded.reports.items()]
        valid_rows = {
            name: rows[name][report.valid_rows - 1] if report.valid_rows is not None else None
            for name, report in loaded.reports.items()
        }
        world = pickle.dumps({"world": loaded.world, "rows": valid_rows}, protocol=5)
        out.append(pd.DataFrame({PART: [part], "kind": ["world"], "payload": [world]}))
        report = pd.concat(out, ignore_index=True).reindex(columns=REPORT_COLUMNS)
        return _for_arrow(report, text=("kind", "table", "reason", "row", "latest", "earliest"))

    return validate


REPORT_COLUMNS = [c.split()[0] for c in REPORT_SCHEMA.split(", ")]


def _for_arrow(frame: pd.DataFrame, text: tuple[str, ...] = ()) -> pd.DataFrame:
    """Text columns as ``object`` with None for missing: PySpark's Arrow conversion takes neither
    pandas 3's ``str`` nor an all-missing float column as text yet."""
    text = (*text, *(c for c, t in frame.dtypes.items() if pd.api.types.is_string_dtype(t) and t != object))
    out = frame.copy()
    for column in dict.fromkeys(text):
        values = out[column].astype(object)
        out[column] = values.where(values.notna(), None)
    return out


def _from_nanos(values: pd.Series) -> pd.Series:
    """Nanoseconds since 1970 (as text, so no float rounds them) as ``datetime64[ns]``."""
    numbers = values.astype("string").astype("Int64")
    return pd.Series(
        numbers.to_numpy(dtype="int64", na_value=np.iinfo("int64").min).view("datetime64[ns]"), index=values.index
    )


def _table_report(part: int, name: str, report: Validated, rows: np.ndarray) -> pd.DataFrame:
    """A table's counts and its rejected and amended rows, numbered as in the input."""
    stamps = report.valid[TIME_COLUMNS[name]] if len(report.valid) else pd.Series(dtype="datetime64[ns]")
    counts = pd.DataFrame({
        PART: [part], "kind": ["count"], "table": [name], "n_valid": [len(report.valid)],
        "latest": [_nanos(stamps.max())], "earliest": [_nanos(stamps.min())],
    })
    listed = [counts]
    for kind, frame in (("rejected", report.rejected), ("amended", report.amended)):
        if frame.empty:
            continue
        source = frame["source_row"].to_numpy()
        local = pd.array(source, dtype="Int64")
        numbers = [rows[i - 1] if not pd.isna(i) and len(rows) else None for i in local]
        cells = frame.drop(columns=["source_row", "reason"])
        listed.append(pd.DataFrame({
            PART: part, "kind": kind, "table": name, "source_row": pd.array(numbers, dtype="Int64"),
            "reason": frame["reason"].astype(str).to_numpy(),
            "row": cells.to_json(orient="records", lines=True, date_format="iso").splitlines(),
        }))
    return pd.concat(listed, ignore_index=True)


def _nanos(stamp: Any) -> str | None:
    return None if pd.isna(stamp) else str(pd.Timestamp(stamp).value)


def categorical_inputs(churn: Any, attributes: Any) -> list[str]:
    """The churn model's inputs that are categories: passed through Spark as text, the rest as numbers."""
    learned = getattr(churn, "categories_", None)
    if learned is not None:
        return [c for c in churn.feature_names_in_ if c in learned]
    extra = [] if isinstance(attributes, str) else list(attributes)
    return [c for c in churn.feature_names_in_ if c in (*CUSTOMER_ATTRIBUTES, *extra)]


def _scores_schema(features: list[str], categorical: list[str]) -> str:
    columns = [
        f"{PART} int", "customer_id string", f"{ORDER} long", "churn_probability double",
        "purchase_value double", f"{PURCHASES_KNOWN} boolean",
        *[f"`attribute_{c}` string" for c in CUSTOMER_ATTRIBUTES],
        *[f"`{c}` {'string' if c in categorical else 'double'}" for c in features],
    ]
    return ", ".join(columns)


def _score_partitions(
    models: Any,
    as_of: pd.Timestamp,
    theme_ids: list[str],
    config: ScoreConfig,
    features: list[str],
    categorical: list[str],
    valuation: PurchaseValue,
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        _quiet_pyspark()
        logging.getLogger("retain").setLevel(logging.ERROR)
        for batch in batches:
            for part, payload in zip(batch[PART], batch["payload"], strict=True):
                stored = pickle.loads(payload)
                world: World = stored["world"]
                if world.customers.empty:
                    continue
                scores = score_customers(
                    world, as_of, models.value, theme_ids, config.features, config.label,
                    purchase_value=valuation,
                )
                yield _for_arrow(
                    _scores_frame(int(part), scores, stored["rows"]["customers"], world, features, categorical)
                )

    return score


def _scores_frame(
    part: int,
    scores: CustomerScores,
    customer_rows: np.ndarray | None,
    world: World,
    features: list[str],
    categorical: list[str],
) -> pd.DataFrame:
    table = scores.table
    if customer_rows is None:  # derived from the events: ordered by id, as pandas derives them
        customer_rows = np.full(len(world.customers), -1, dtype="int64")
    order = pd.Series(customer_rows, index=world.customers["customer_id"].astype(str).to_numpy())
    order = order[~order.index.duplicated()]
    out = pd.DataFrame({
        PART: part,
        "customer_id": table["customer_id"].astype(str).to_numpy(),
        ORDER: order.reindex(table["customer_id"].astype(str).to_numpy()).to_numpy(dtype="int64"),
        "churn_probability": scores.probability,
        "purchase_value": np.nan if scores.purchase_value is None else scores.purchase_value,
        PURCHASES_KNOWN: scores.purchase_value is not None,
    })
    for column in CUSTOMER_ATTRIBUTES:
        values = scores.attributes[column] if column in scores.attributes.columns else pd.Series(None, index=table.index)
        out[f"attribute_{column}"] = _as_text(values)
    for column in features:
        if column not in table.columns:
            values = pd.Series(np.nan, index=table.index)
        else:
            values = table[column]
        if column in categorical:
            out[column] = _as_text(values)
        elif pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            out[column] = values.to_numpy(dtype="float64")
        else:
            raise ScoringError(
                f"feature {column!r} is {values.dtype}, neither a number nor a category the churn "
                "model knows: the Spark engine cannot pass it on"
            )
    return out


def _as_text(values: pd.Series) -> np.ndarray:
    text = values.astype(object)
    return np.asarray([None if pd.isna(v) else str(v) for v in text], dtype=object)


# --- the driver --------------------------------------------------------------------------------


def _purchase_value(worlds: DataFrame, as_of: pd.Timestamp, config: ScoreConfig) -> PurchaseValue:
    """The pandas engine's :func:`~retain.scoring.fit_purchase_value`: BG/NBD and Gamma-Gamma
    fitted here on every partition's purchase histories, so each partition values its customers
    with the models of the whole log (a fit per partition would differ from one part to the next)."""

    def histories(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for payload in batch["payload"]:
                world: World = pickle.loads(payload)["world"]
                found = purchase_histories(world, as_of)
                marker = pd.DataFrame(
                    {"customer_id": [None], **{c: [np.nan] for c in SUMMARY_COLUMNS},
                     "has_amounts": [found is not None], "needs_value": [needs_purchase_value(world.customers)]}
                )
                rows = [marker] if found is None or found.empty else [found.reset_index(), marker]
                yield _for_arrow(pd.concat(rows, ignore_index=True)[marker.columns], ("customer_id",))

    if config.scoring.purchase_value == "recent_spend":
        return purchase_value_model(None, config.scoring, config.features)
    rows = worlds.mapInPandas(histories, HISTORY_SCHEMA).toPandas()
    markers = rows["customer_id"].isna()
    if not rows.loc[markers, "needs_value"].any():
        return purchase_value_model(None, config.scoring, config.features)
    found = rows.loc[~markers].set_index("customer_id")[list(SUMMARY_COLUMNS)].sort_index()
    has_amounts = bool(rows.loc[markers, "has_amounts"].any())
    return purchase_value_model(found if has_amounts else None, config.scoring, config.features)


def _customer_scores(
    frame: pd.DataFrame, as_of: pd.Timestamp, features: list[str], categorical: list[str],
    purchase_basis: str = RECENT_SPEND,
) -> CustomerScores:
    """The per-customer scores read back, in the customers table's order, with pandas' dtypes."""
    frame = frame.sort_values([ORDER, "customer_id"], kind="stable").reset_index(drop=True)
    table = pd.DataFrame({"customer_id": frame["customer_id"].astype(object), "as_of": as_of})
    for column in features:
        values = frame[column]
        if column in categorical:
            levels = pd.Index(values.dropna().unique()).sort_values()
            table[column] = pd.Categorical(values.astype(object).where(values.notna(), None), categories=levels)
        else:
            table[column] = values.to_numpy(dtype="float64")
    known = frame[PURCHASES_KNOWN].to_numpy(dtype=bool)
    value = None if not known.any() else np.where(known, frame["purchase_value"].to_numpy(dtype=float), 0.0)
    attributes = pd.DataFrame(
        {c: frame[f"attribute_{c}"].astype(object).where(frame[f"attribute_{c}"].notna(), None) for c in CUSTOMER_ATTRIBUTES},
        index=table.index,
    )
    return CustomerScores(
        table=table, probability=frame["churn_probability"].to_numpy(dtype=float),
        purchase_value=value, attributes=attributes, purchase_basis=purchase_basis,
    )


def _reports(
    counts: pd.DataFrame, locations: dict[str, str], config: DataConfig
) -> tuple[dict[str, Validated], tuple[str, ...]]:
    """Per table, what ``data.load_world`` reports: rows used, rejected and amended rows.

    Writes the quarantine files and stops on ``data.max_quarantine_share`` and
    ``data.warnings_fatal`` as ``load_world`` does.
    """
    reports: dict[str, Validated] = {}
    for name in ("customers", *data.OPTIONAL_TABLES):
        mine = counts.loc[counts["table"] == name]
        if mine.empty and name not in locations:
            continue
        used = int(mine.loc[mine["kind"] == "count", "n_valid"].sum())
        source = locations.get(name, f"{locations.get('events')} (derived)")
        reports[name] = Validated(
            table=name, source=source, valid=pd.DataFrame(index=range(used)),
            rejected=_quarantined(mine.loc[mine["kind"] == "rejected"]),
            amended=_quarantined(mine.loc[mine["kind"] == "amended"]),
        )
    warnings = data.table_warnings(reports)
    qdir = config.quarantine_dir or config.path / "quarantine"
    data.write_quarantine_files(reports, qdir)
    data.check_quarantine_share(reports, config.max_quarantine_share, qdir)
    if config.warnings_fatal and warnings:
        raise ContractError("data warnings (data.warnings_fatal is set):\n  " + "\n  ".join(warnings))
    return reports, tuple(warnings)


def _quarantined(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame()
    cells = pd.DataFrame([json.loads(r) for r in rows["row"]], index=rows.index)
    out = pd.concat([rows[["source_row", "reason"]], cells], axis=1)
    return out.sort_values("source_row", kind="stable").reset_index(drop=True)


def _data_end(counts: pd.DataFrame) -> pd.Timestamp:
    latest = counts.loc[counts["kind"] == "count", "latest"].dropna()
    if latest.empty:
        raise ScoringError("the data has no dated rows")
    return pd.Timestamp(max(int(n) for n in latest))


def _explained_world(
    spark: SparkSession, worlds: DataFrame, scores: CustomerScores, config: ScoreConfig, locations: dict[str, str]
) -> World:
    """The customers (ids, attributes) and the explained customers' tickets and feedback, from the cluster."""
    explained = set(explained_customers(scores, config.scoring).astype(str))
    wanted = spark.sparkContext.broadcast(explained)
    names = [n for n in ("tickets", "feedback") if n in locations]

    def pick(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for payload in batch["payload"]:
                stored = pickle.loads(payload)
                tables = stored["world"].tables()
                for name in names:
                    frame = tables[name]
                    mine = frame["customer_id"].astype(str).isin(wanted.value).to_numpy()
                    rows = stored["rows"][name][mine]
                    picked = frame.loc[mine].reset_index(drop=True)
                    yield _for_arrow(
                        pd.DataFrame({"table": [name], "payload": [pickle.dumps((picked, rows), protocol=5)]})
                    )

    picked = worlds.mapInPandas(pick, "table string, payload binary").toPandas() if names else pd.DataFrame()
    found: dict[str, pd.DataFrame | None] = {}
    for name in names:
        parts = [pickle.loads(p) for p in picked.loc[picked["table"] == name, "payload"]]
        frame = pd.concat([f for f, _ in parts], ignore_index=True)
        order = np.argsort(np.concatenate([r for _, r in parts]), kind="stable")
        found[name] = frame.iloc[order].reset_index(drop=True)
    customers = pd.concat([scores.table[["customer_id"]], scores.attributes], axis=1)
    return World(customers=customers, tickets=found.get("tickets"), feedback=found.get("feedback"))

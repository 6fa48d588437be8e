"""The ``retain`` command: argument parsing, logging and exit codes. The work is in ``retain.jobs``.

Exit codes: 0 success; 2 bad usage or config; 3 input data unusable; 4 no champion model yet;
5 the tracking store or a model's artifacts unusable; 6 an output cannot be written; 7 a model's
files differ from the sha256 recorded when it was logged (not loaded); 8 the database the list is
published to cannot be opened or written; 9 a monitoring check was breached and
scoring.monitoring.fail_on_breach is set (the list is written; docs/monitoring.md); 1 anything unexpected. README "When things go wrong" lists the messages and what to do.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

# MLflow imports PySpark whenever it is installed (the `spark` extra), and PySpark warns on import
# that it does not fully support pandas 3: noise in every command's output, about code retain
# only runs with --engine spark (where retain.engines.spark converts frames for it).
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

app = typer.Typer(
    name="retain",
    help=(
        "Turn what customers say and do into action: classify feedback into themes and "
        "sentiment, predict churn from behaviour and support history, and rank at-risk "
        "customers with reasons and a recommended action.\n\n"
        "Start with `retain demo`: it builds a synthetic world, trains, registers and scores.\n\n"
        "Exit codes: 0 done; 2 a config file or option is wrong; 3 the input data cannot be used; "
        "4 no champion model yet (train first); 5 the tracking store or a model's files are "
        "damaged or unreachable; 6 an output cannot be written; 7 a model's files differ from the "
        "sha256 recorded when it was logged, or it was pickled by an older retain (not loaded; "
        "retrain); 8 the database the list is published to cannot be opened or written; "
        "9 `retain score` wrote the list but a monitoring check was breached "
        "(scoring.monitoring.fail_on_breach: true); "
        "130 interrupted; 1 a bug. Each failure "
        "prints one `error:` line; README 'When things go wrong' says what to do."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_NO_MODEL = 4
EXIT_STORE = 5
EXIT_OUTPUT = 6
EXIT_TAMPERED = 7
EXIT_DATABASE = 8
EXIT_MONITORING = 9

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")]
WarningsFatal = Annotated[
    bool,
    typer.Option(
        "--warnings-fatal",
        help="Stop with exit 3 on any data warning (quarantined rows, fields set missing, an empty "
        "table) instead of listing them in the summary; same as data.warnings_fatal: true.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bars.")]


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        # Progress bars of libraries (weight loading, hub) honour these; ours follow --quiet.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _iso_date(value: str, option: str) -> date:
    """A YYYY-MM-DD option value, or a usage error (exit 2) naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD): {exc}", param_hint=option) from None


def _run(job, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a job, turning known failures into a clear message and an exit code."""
    from retain.config import ConfigError
    from retain.contracts import ContractError
    from retain.data import OutputError
    from retain.scoring import ScoringError
    from retain.serve.db import DatabaseError
    from retain.serve.runs import RunError
    from retain.text.training import TextTrainingError
    from retain.tracking import ModelIntegrityError, NoChampionError, StoreError
    from retain.training import TrainingError

    try:
        return job(*args, **kwargs)
    except (ConfigError, RunError) as exc:
        raise _fail(str(exc), EXIT_CONFIG) from None
    except DatabaseError as exc:
        raise _fail(str(exc), EXIT_DATABASE) from None
    except (ContractError, TrainingError, ScoringError, TextTrainingError) as exc:
        raise _fail(str(exc), EXIT_DATA) from None
    except NoChampionError as exc:
        raise _fail(str(exc), EXIT_NO_MODEL) from None
    except ModelIntegrityError as exc:  # before StoreError, its base class
        raise _fail(str(exc), EXIT_TAMPERED) from None
    except StoreError as exc:
        raise _fail(str(exc), EXIT_STORE) from None
    except OutputError as exc:
        raise _fail(str(exc), EXIT_OUTPUT) from None


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write customers, events, tickets, feedback.")],
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = 0,
    start: Annotated[str, typer.Option(help="First day of the simulated span (YYYY-MM-DD).")] = "2024-01-01",
    end: Annotated[str, typer.Option(help="Last day of the simulated span (YYYY-MM-DD).")] = "2025-12-31",
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Generate a synthetic customer base with a planted, documented churn structure.

    The four tables follow retain's data contracts (docs/data_contracts.md); the feedback
    carries its true sentiment and theme labels. See docs/synthetic_world.md.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs

    first, last = _iso_date(start, "--start"), _iso_date(end, "--end")
    if file_format not in ("parquet", "csv"):
        raise typer.BadParameter(f"{file_format!r} is not parquet or csv", param_hint="--format")
    paths = _run(jobs.run_synth, out, customers, seed, first, last, file_format, not quiet)
    for name, path in paths.items():
        typer.echo(f"{name:<10} {path}")


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Data set config (YAML).")] = Path("configs/train.yaml"),
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Train as if the data ended on this date (YYYY-MM-DD): no row dated after it is "
            "read, so every label window closes by then. Simulates a held-out period.",
        ),
    ] = None,
    warnings_fatal: WarningsFatal = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Audit the data for leaks, train text and churn models, evaluate them honestly, register them.

    Dated tables: churn is evaluated by a backtest over several as_of dates (each predicted by a
    model fitted only on labels observed by then), with 95% intervals and a paired test against
    the logistic baseline; settings are chosen on a validation date before the first evaluation
    date; the registered model is then refitted on every labelled date. Flat tables: the same
    with cross-validation folds (or the configured test file). A model becomes `champion` only
    if it beats its baseline, and the current champion on the same evaluation data, in a
    paired test. Text models are trained from whatever labels exist (none is fine).
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import TrainConfig

    cfg = _strict(_run(_load, config, TrainConfig), warnings_fatal)
    stop = _iso_date(until, "--until") if until else None
    outcome = _run(jobs.run_train, cfg, show_progress=not quiet, until=stop)
    typer.echo(jobs.format_training_outcome(outcome))


ScoreConfigPath = Annotated[Path, typer.Option("--config", "-c", help="Scoring config (YAML).")]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD); default: the day after the data ends."),
]
ForceAsOf = Annotated[
    bool,
    typer.Option(
        "--force-as-of",
        help="Score at --as-of even when it is more than scoring.max_as_of_gap_days from "
        "the end of the data (otherwise refused with exit 3).",
    ),
]


@app.command()
def score(
    config: ScoreConfigPath = Path("configs/score.yaml"),
    as_of: AsOf = None,
    force_as_of: ForceAsOf = False,
    top: Annotated[int, typer.Option(help="How many customers to print.")] = 10,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Also publish the list to the database (scoring.database.url, or "
            "$RETAIN_DATABASE_URL) as the new current run; same as scoring.publish: true.",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="pandas (this process) or spark: validate and score the customers per partition "
            "on Spark (scoring.spark: master, default local[2]; partitions; conf), then rank here; "
            "the same list. Needs pyspark (pip install 'pyspark>=3.5', the spark extra) and Java 17; Parquet "
            "tables only. Default: scoring.engine (pandas).",
        ),
    ] = None,
    warnings_fatal: WarningsFatal = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Score customers with the champion models and write the ranked at-risk list.

    Writes ranked_customers.parquet, ranked_customers.csv and score_summary.json into a new
    run directory <scoring.output_dir>/runs/<id>/, then switches <scoring.output_dir>/latest to
    it atomically (one rename): a reader sees the previous list or the new one, never a mix, and
    a crash leaves the previous list in place. Prints the scoring date used (default: the day
    after the data ends); an --as-of more than scoring.max_as_of_gap_days from the end of the
    data is refused (exit 3) unless --force-as-of is given. With --publish the list is also
    written to the database as a new run that becomes current in one transaction (exit 8 if the
    database cannot be opened or written). Each run is monitored (scoring.monitoring: input and
    score drift against the model's training reference, theme surges, the ROC-AUC estimated
    before labels, realised performance of earlier runs): a breach is a `monitoring breach:`
    warning and a flag in score_summary.json, and exit 9 with scoring.monitoring.fail_on_breach.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import ScoreConfig

    cfg = _strict(_run(_load, config, ScoreConfig), warnings_fatal)
    if publish:
        cfg = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"publish": True})})
    if engine is not None:
        if engine not in ("pandas", "spark"):
            raise typer.BadParameter(f"{engine!r} is not pandas or spark", param_hint="--engine")
        cfg = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"engine": engine})})
    when = _iso_date(as_of, "--as-of") if as_of else None
    outcome = _run(jobs.run_score, cfg, when, force_as_of=force_as_of, show_progress=not quiet)
    typer.echo(jobs.format_score_outcome(outcome, top=top))
    if cfg.scoring.monitoring.fail_on_breach and (outcome.summary.get("monitoring") or {}).get("breach"):
        raise _fail("monitoring breached (see the `monitoring breach:` lines); the list was written", EXIT_MONITORING)


@app.command()
def explain(
    customer_ids: Annotated[list[str], typer.Argument(help="Customer ids to explain.", metavar="CUSTOMER_ID...")],
    config: ScoreConfigPath = Path("configs/score.yaml"),
    as_of: AsOf = None,
    force_as_of: ForceAsOf = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Give any customer's reasons and the tickets and comments behind them, on request.

    A large scoring run computes reasons only for the top of the list (scoring.reasons_for:
    top); this computes them for the customers named, with exact model attributions, read
    against the whole population as the list's are. It scores the population as `retain score`
    does (with the text cache, a rerun scores only new texts) and writes nothing. Exit 3 when a
    customer is not in the population at the date.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import ScoreConfig

    cfg = _run(_load, config, ScoreConfig)
    when = _iso_date(as_of, "--as-of") if as_of else None
    outcome = _run(jobs.run_explain, cfg, customer_ids, when, force_as_of=force_as_of, show_progress=not quiet)
    typer.echo(jobs.format_explain_outcome(outcome))


@app.command()
def report(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="A data set's config with an optional report: section (any train/score config works).",
        ),
    ] = Path("configs/report.yaml"),
    output_dir: Annotated[
        Path | None, typer.Option(help="Write the report here instead of report.output_dir.")
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Write one self-contained HTML report: service KPIs, themes, churn drivers, value, model, drift.

    Reads the data named in the config and, when there is one, the champion churn model with the
    text models it was trained with (themes, drivers, the model's calibration and gains on its
    held-out dates) and the latest scoring run's monitoring. Writes report.html (plots inline,
    no other file needed) and the tables behind it as CSV to report.output_dir, and logs the page
    to MLflow as a run named `report`. `retain serve -c CONFIG` links to the page.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import ScoreConfig

    cfg = _run(_load, config, ScoreConfig)
    if output_dir is not None:
        cfg = cfg.model_copy(update={"report": cfg.report.model_copy(update={"output_dir": output_dir})})
    outcome = _run(jobs.run_report, cfg, show_progress=not quiet)
    typer.echo(jobs.format_report_outcome(outcome))


@app.command()
def demo(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Demo config (YAML); default: built-in.")] = None,
    customers: Annotated[int | None, typer.Option(min=100, help="Override the number of synthetic customers.")] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run everything on a synthetic world: generate, train, register, score, and show the top 10."""
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import DemoConfig

    cfg = _run(_load, config, DemoConfig) if config else DemoConfig()
    if customers is not None:
        cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"customers": customers})})
    outcome = _run(jobs.run_demo, cfg, show_progress=not quiet)
    typer.echo(jobs.format_demo_outcome(outcome))


runs_app = typer.Typer(
    name="runs",
    help=(
        "The runs published to the database (`retain score --publish`): `retain runs` lists them, "
        "the current one marked; `retain runs rollback RUN_ID` makes an earlier run current again."
    ),
)
app.add_typer(runs_app, name="runs")

RunsConfig = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help="Scoring config naming scoring.database; default configs/score.yaml when it exists, "
        "else $RETAIN_DATABASE_URL or sqlite:///outputs/retain.db.",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The database (SQLAlchemy URL); wins over $RETAIN_DATABASE_URL, which wins over the config.",
    ),
]


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    config: RunsConfig = None,
    database_url: DatabaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """List the published runs, newest first, the current one marked with *."""
    if ctx.invoked_subcommand is not None:
        return
    _configure_logging(verbose, quiet=not verbose)
    from retain import jobs

    database = _run(jobs.database_of, config, database_url)
    typer.echo(jobs.format_runs(_run(jobs.list_published_runs, database), database))


@runs_app.command("rollback")
def runs_rollback(
    run_id: Annotated[int, typer.Argument(help="The run to make current again (see `retain runs`).")],
    config: RunsConfig = None,
    database_url: DatabaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Make an earlier run the current list again, in one transaction; the run left is marked rolled_back."""
    _configure_logging(verbose, quiet=not verbose)
    from retain import jobs

    database = _run(jobs.database_of, config, database_url)
    run = _run(jobs.rollback_published_run, database, run_id)
    typer.echo(f"Run {run.id} (as of {run.as_of:%Y-%m-%d}, {run.customers} customers) is the current list again.")


text_app = typer.Typer(
    name="text",
    help=(
        "Feedback text on its own: per-text sentiment and themes from a file of reviews, survey "
        "answers or tickets, with or without labels.\n\n"
        "`retain text train -c configs/text.yaml` trains and registers one text model from "
        "whatever labels the file has; `retain text score -c configs/text.yaml --input "
        "reviews.csv` writes sentiment, themes and sentiment per theme for every text. "
        "See docs/text.md."
    ),
    no_args_is_help=True,
)
app.add_typer(text_app, name="text")

TextConfig = Annotated[
    Path,
    typer.Option(
        "--config", "-c",
        help="Text job config (YAML): the feedback file and its columns, taxonomy, model kind, "
        "tracking, output and cache paths. See configs/text.yaml.",
    ),
]


@text_app.command("train")
def text_train(
    config: TextConfig = Path("configs/text.yaml"),
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Train sentiment and/or themes from the labels the file has; register one text model.

    A task (sentiment, themes) with at least validation.min_labelled labels is trained with
    model.kind (tfidf, transformer, or auto: both, the transformer kept only if a paired
    bootstrap on the validation split shows it beats TF-IDF), evaluated on a stratified
    validation split carved from the labelled rows (accuracy and macro-F1 for sentiment, micro-
    and macro-F1 for themes, beside a majority baseline), then refitted on every labelled row.
    A task without labels gets the zero-label classifier (model.unlabelled). The model is logged
    to MLflow as one pyfunc (a DataFrame with a `text` column in, probabilities and labels out),
    registered as tracking.text_model and made champion if it beats its baseline and the
    champion evaluated on the same data. Writes text_training.json beside the scores output.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import TextJobConfig

    cfg = _run(_load, config, TextJobConfig)
    outcome = _run(jobs.run_text_train, cfg, show_progress=not quiet)
    typer.echo(jobs.format_text_training(outcome))


@text_app.command("score")
def text_score(
    config: TextConfig = Path("configs/text.yaml"),
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i",
            help="File of texts to score (.csv, .tsv, .txt, .parquet), read with the config's "
            "data.columns and data.read; default: the config's data.path. Label columns are "
            "ignored and need not exist.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o",
            help="Where to write the scores (.csv or .parquet); default: the config's output. "
            "The summary is written beside it as <name>_summary.json.",
        ),
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Score with this logged text model (e.g. models:/retain-text/3 or "
            "runs:/<run id>/text) instead of the registered champion.",
        ),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Score every text with the champion text model: sentiment, themes, sentiment per theme.

    Writes one row per text: id, sentiment_<label> probabilities and `sentiment`, theme_<id>
    probabilities and `themes` (ids joined by "|"), and `theme_sentiments` (theme:sentiment
    pairs, from the clauses that raise each theme: "the staff were lovely but billing was a
    mess" gives staff positive, billing negative). Prints and writes a count of
    texts by theme and sentiment. Texts scored before by the same model version, with the same
    id and text, are taken from the inference cache (the config's cache path), so a rerun
    scores only new or changed texts.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import TextJobConfig

    cfg = _run(_load, config, TextJobConfig)
    outcome = _run(
        jobs.run_text_score, cfg, input_path, output, model_uri, show_progress=not quiet
    )
    typer.echo(jobs.format_text_scores(outcome))


@text_app.command("discover")
def text_discover(
    config: TextConfig = Path("configs/text.yaml"),
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i",
            help="File of texts (read with the config's data.columns and data.read); default: "
            "the config's data.path. Labels are not read.",
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o",
            help="Where to write the proposed taxonomy (YAML), for a person to edit and then "
            "name as the config's taxonomy.",
        ),
    ] = Path("outputs/discovered_themes.yaml"),
    n_themes: Annotated[
        int | None,
        typer.Option(
            "--n-themes", "-n", min=2,
            help="How many themes to propose; default: chosen by silhouette between 3 and 12.",
        ),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Propose themes from unlabelled texts, written as a taxonomy file a person can edit.

    Embeds the texts with the config's model.encoder, clusters them (KMeans, fixed seed; small
    clusters dropped), and names each cluster by its most distinctive terms (class-based TF-IDF),
    with three example texts. Ids come from the terms, so a rerun on the same texts gives the
    same ids whatever their order. Edit names and descriptions, then point the config's
    taxonomy at the file: retain text train scores texts against it without any labels.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import TextJobConfig

    cfg = _run(_load, config, TextJobConfig)
    outcome = _run(
        jobs.run_text_discover, cfg, output, input_path, n_themes, show_progress=not quiet
    )
    typer.echo(jobs.format_text_discovery(outcome))


# --- the at-risk list served: the page and API, and its tokens ---------------------------------

def _database(config: Path | None, database: str | None):  # type: ignore[no-untyped-def]
    from retain import jobs

    return _run(jobs.database_of, config, database)


@app.command()
def serve(
    config: RunsConfig = None,
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    report: Annotated[
        Path | None,
        typer.Option(
            help="The insight report to link from the page (retain report's report.html); default: "
            "the config's report.output_dir/report.html.",
        ),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Serve the at-risk list: the support leads' page at / and the API under /api (docs at /api/docs).

    Reads the list `retain score --publish` wrote to the database. Every customer request needs
    a token: create one with `retain tokens create --role lead --name <who>` and paste it into
    the page. Requests are logged without customer ids, texts or tokens.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs

    report_path = report if report is not None else _run(jobs.report_of, config)
    _run(
        jobs.run_serve, _database(config, database_url), host, port,
        log_level="warning" if quiet else "info", report_path=report_path,
    )


tokens_app = typer.Typer(
    name="tokens",
    help="API tokens for the page and the API. Roles: viewer (list and detail), lead (also log "
    "outreach), publisher (publish and roll back runs), admin (tokens). A token is printed once; "
    "only its sha256 is stored.",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="viewer, lead, publisher or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds it (e.g. alice, nightly-scoring).")],
    config: RunsConfig = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from retain import jobs

    token = _run(jobs.run_tokens_create, _database(config, database_url), name, role)
    typer.echo(token)
    typer.echo(f"token for {name} ({role}) created; store it now, it is not shown again", err=True)


@tokens_app.command("list")
def tokens_list(config: RunsConfig = None, database_url: DatabaseUrl = None) -> None:
    """List tokens: name, role, created, revoked (never the tokens)."""
    from retain import jobs

    for t in _run(jobs.run_tokens_list, _database(config, database_url)):
        revoked = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "active"
        typer.echo(f"{t['id']:>4}  {t['name']:<24} {t['role']:<10} created {t['created_at'][:19]}  {revoked}")


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name (or id).")],
    config: RunsConfig = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token at once: requests carrying it get 401."""
    from retain import jobs

    revoked = _run(jobs.run_tokens_revoke, _database(config, database_url), name)
    if not revoked:
        raise _fail(f"no active token named {name!r} (retain tokens list shows them)", EXIT_CONFIG)
    typer.echo(f"revoked {revoked} token(s) named {name}")


outreach_app = typer.Typer(
    name="outreach",
    help=(
        "What the ranked list led to. Every `retain score` run keeps its outreach plan (who was "
        "assigned, queued, cooled down or held out as control) under "
        "<scoring.output_dir>/outreach_plans/; once the churn horizon of a plan has passed, "
        "`retain outreach report -c configs/score.yaml` measures the effect. See docs/outreach.md."
    ),
    no_args_is_help=True,
)
app.add_typer(outreach_app, name="outreach")


@outreach_app.command("report")
def outreach_report(
    config: Annotated[Path, typer.Option("--config", "-c", help="Scoring config (YAML).")] = Path("configs/score.yaml"),
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="An outreach_plan.parquet to report on; default: an archived plan."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The date of the archived plan (YYYY-MM-DD); default: the newest whose horizon has passed."),
    ] = None,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Also store the report in scoring.database, where `retain serve`'s page and API "
            "show it; contacts logged there count as contacted.",
        ),
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Compare churn of contacted and control customers of a past list, per playbook action.

    Reads the plan, the data (churn labels over features.horizon_days after the plan's date,
    as label.definition defines them) and who was actually contacted (scoring.outreach_history
    and, when the list is published, the outreach log in the database). Prints the table and writes effect_<date>.json and .png under
    <scoring.output_dir>/outreach_effects/. Exit 3 when the data does not cover the horizon yet.
    """
    _configure_logging(verbose, quiet)
    from retain import jobs
    from retain.config import ScoreConfig

    cfg = _run(_load, config, ScoreConfig)
    when = _iso_date(as_of, "--as-of") if as_of else None
    report = _run(jobs.run_outreach_report, cfg, plan, when, publish)
    typer.echo(jobs.format_outreach_report(report))


def _strict(config, warnings_fatal: bool):  # type: ignore[no-untyped-def]
    """``config`` with ``data.warnings_fatal`` set when the flag asks for it."""
    if not warnings_fatal:
        return config
    return config.model_copy(update={"data": config.data.model_copy(update={"warnings_fatal": True})})


def _load(path: Path, model):  # type: ignore[no-untyped-def]
    from retain.config import load_config

    return load_config(path, model)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

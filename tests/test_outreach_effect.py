"""``outreach.effect``: churn of treated vs control customers with Newcombe intervals, by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retain.outreach.effect import (
    ALL_ACTIONS,
    INTENTION_TO_TREAT,
    PER_PROTOCOL,
    newcombe_interval,
    outreach_effect,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_newcombe_difference_matches_the_published_examples() -> None:
    # Newcombe (1998), table II, method 10: 56/70 - 48/80 = 0.2, 0.0524 to 0.3339
    d, low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    # 9/10 - 3/10 = 0.6, 0.1705 to 0.8090
    d, low, high = newcombe_interval(9, 10, 3, 10)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.6, 0.1705, 0.809)
    assert math.isnan(newcombe_interval(1, 2, 0, 0)[0])


def _plan() -> tuple[pd.DataFrame, pd.Series]:
    """Action 'call': 4 assigned (1 churned), 2 held out (2 churned). Action 'mail': 2 assigned
    (0 churned), 2 held out (1 churned). Plus customers no comparison may count."""
    rows = [
        # id, control, status, action, churned
        ("A1", False, "assigned", "call", 1),
        ("A2", False, "assigned", "call", 0),
        ("A3", False, "assigned", "call", 0),
        ("A4", False, "assigned", "call", 0),
        ("H1", True, "held_out", "call", 1),
        ("H2", True, "held_out", "call", 1),
        ("M1", False, "assigned", "mail", 0),
        ("M2", False, "assigned", "mail", 0),
        ("N1", True, "held_out", "mail", 1),
        ("N2", True, "held_out", "mail", 0),
        ("Q1", False, "queued", "call", 1),  # never going to be contacted today
        ("Q2", True, "queued", "call", 1),  # control but would have been queued
        ("K1", False, "cooldown", "mail", 1),
        ("U1", False, "assigned", "call", None),  # horizon not passed / outcome unknown
    ]
    plan = pd.DataFrame(rows, columns=["customer_id", "control", "outreach_status", "recommended_action", "churned"])
    outcomes = plan.set_index("customer_id")["churned"].dropna()
    return plan.drop(columns="churned"), outcomes


def test_intention_to_treat_overall_and_per_action_by_hand() -> None:
    plan, outcomes = _plan()
    effect = outreach_effect(plan, outcomes).set_index(["action", "analysis"])
    overall = effect.loc[(ALL_ACTIONS, INTENTION_TO_TREAT)]
    # treated: A1-A4, M1, M2 (6, 1 churned); control: H1, H2, N1, N2 (4, 3 churned)
    assert (overall["n_treated"], overall["churned_treated"]) == (6, 1)
    assert (overall["n_control"], overall["churned_control"]) == (4, 3)
    assert overall["difference"] == pytest.approx(1 / 6 - 3 / 4)
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx(newcombe_interval(1, 6, 3, 4)[1:])
    call = effect.loc[("call", INTENTION_TO_TREAT)]
    assert (call["n_treated"], call["churned_treated"], call["n_control"], call["churned_control"]) == (4, 1, 2, 2)
    assert call["churn_rate_treated"] == 0.25 and call["churn_rate_control"] == 1.0
    mail = effect.loc[("mail", INTENTION_TO_TREAT)]
    assert mail["difference"] == pytest.approx(0.0 - 0.5)
    assert mail["ci_low"] < mail["difference"] < mail["ci_high"]
    assert list(effect.index.get_level_values("action")) == [ALL_ACTIONS, "call", "mail"]
    assert PER_PROTOCOL not in set(effect.index.get_level_values("analysis"))


def test_per_protocol_counts_only_customers_actually_contacted() -> None:
    plan, outcomes = _plan()
    # A1 (churned) and M1 were never reached; Q1 was contacted but was not on today's plan
    effect = outreach_effect(plan, outcomes, contacted=["A2", "A3", "A4", "M2", "Q1"])
    pp = effect.set_index(["action", "analysis"]).loc[(ALL_ACTIONS, PER_PROTOCOL)]
    assert (pp["n_treated"], pp["churned_treated"], pp["n_control"], pp["churned_control"]) == (4, 0, 4, 3)
    assert pp["difference"] == pytest.approx(-0.75)
    assert pp["ci_high"] < 0  # 0/4 against 3/4: the interval excludes no effect
    itt = effect.set_index(["action", "analysis"]).loc[(ALL_ACTIONS, INTENTION_TO_TREAT)]
    assert itt["n_treated"] == 6  # intention to treat keeps the unreached


def test_an_action_without_control_customers_has_no_interval() -> None:
    plan = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "control": [False, False, True],
            "outreach_status": ["assigned", "assigned", "held_out"],
            "recommended_action": ["call", "mail", "call"],
        }
    )
    effect = outreach_effect(plan, pd.Series({"A": 0, "B": 1, "C": 1}))
    mail = effect.loc[effect["action"] == "mail"].iloc[0]
    assert mail["n_control"] == 0 and np.isnan(mail["difference"]) and np.isnan(mail["ci_low"])


def test_nothing_known_yet_gives_an_empty_table() -> None:
    plan, _ = _plan()
    effect = outreach_effect(plan, pd.Series(dtype=float))
    assert effect.empty and list(effect.columns)[:2] == ["action", "analysis"]


def test_the_report_command_reads_outcomes_from_the_data_after_the_horizon(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`retain outreach report` on an archived plan: labels from the data, contacts from the log."""
    from typer.testing import CliRunner

    from retain.churn.labels import labels
    from retain.cli import EXIT_DATA, app
    from retain.data import write_frame, write_world
    from retain.scoring import plan_archive_path
    from retain.synth import generate_world

    world = generate_world(400, seed=5, start="2024-01-01", end="2024-12-31")
    write_world(world, tmp_path / "world")
    as_of = pd.Timestamp("2024-08-01")
    truth = labels(world.customers, world.events, as_of, 90)
    ids = truth.index.to_list()
    plan = pd.DataFrame(
        {
            "as_of": as_of,
            "customer_id": ids,
            "control": [i % 5 == 0 for i in range(len(ids))],
            "outreach_status": ["held_out" if i % 5 == 0 else "assigned" for i in range(len(ids))],
            "recommended_action": ["call" if i % 2 else "mail" for i in range(len(ids))],
        }
    )
    out = tmp_path / "outputs"
    write_frame(plan, plan_archive_path(out, as_of))
    reached = [c for i, c in enumerate(ids) if i % 5 and i % 3]
    contacts = pd.DataFrame({"customer_id": reached, "contacted_at": str(as_of + pd.Timedelta(days=2))})
    contacts.loc[len(contacts)] = [ids[1], "2024-07-01"]  # before the list: not a contact for it
    contacts.to_csv(tmp_path / "contacts.csv", index=False)
    config = tmp_path / "score.yaml"
    config.write_text(
        f"data: {{path: {tmp_path / 'world'}}}\n"
        f"scoring: {{output_dir: {out}, outreach_history: {tmp_path / 'contacts.csv'}}}\n"
    )
    result = CliRunner().invoke(app, ["outreach", "report", "-c", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "list of 2024-08-01" in result.output and "(all actions)" in result.output
    report = json.loads((out / "outreach_effects" / "effect_2024-08-01.json").read_text())
    assert (out / "outreach_effects" / "effect_2024-08-01.png").stat().st_size > 0
    rows = {(r["action"], r["analysis"]): r for r in report["rows"]}
    treated = [c for i, c in enumerate(ids) if i % 5]
    control = [c for i, c in enumerate(ids) if i % 5 == 0]
    itt = rows[(ALL_ACTIONS, INTENTION_TO_TREAT)]
    assert (itt["n_treated"], itt["churned_treated"]) == (len(treated), int(truth[treated].sum()))
    assert (itt["n_control"], itt["churned_control"]) == (len(control), int(truth[control].sum()))
    pp = rows[(ALL_ACTIONS, PER_PROTOCOL)]
    assert (pp["n_treated"], pp["churned_treated"]) == (len(reached), int(truth[reached].sum()))
    assert "ITT: every assigned customer" in result.output and "PP is empty" not in result.output

    # only a contact before the list: the report says why its PP lines are empty
    pd.DataFrame({"customer_id": [ids[1]], "contacted_at": ["2024-07-01"]}).to_csv(tmp_path / "contacts.csv", index=False)
    result = CliRunner().invoke(app, ["outreach", "report", "-c", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "No contact with an assigned customer of this list is logged from 2024-08-01 to" in result.output

    too_soon = CliRunner().invoke(app, ["outreach", "report", "-c", str(config), "--as-of", "2024-11-01", "-q"])
    assert too_soon.exit_code == EXIT_DATA and "no outreach plan of 2024-11-01" in too_soon.output
    write_frame(plan.assign(as_of=pd.Timestamp("2024-11-01")), plan_archive_path(out, pd.Timestamp("2024-11-01")))
    too_soon = CliRunner().invoke(app, ["outreach", "report", "-c", str(config), "--as-of", "2024-11-01", "-q"])
    assert too_soon.exit_code == EXIT_DATA and "who churned is not known yet" in too_soon.output


def test_the_report_says_when_the_overall_interval_cannot_tell() -> None:
    from retain.jobs import OutreachReport, format_outreach_report

    plan = pd.DataFrame(
        {
            "customer_id": list("ABCDEFG"),
            "control": [False] * 5 + [True] * 2,
            "outreach_status": ["assigned"] * 5 + ["held_out"] * 2,
            "recommended_action": ["call"] * 7,
        }
    )
    effect = outreach_effect(plan, pd.Series(dict(zip("ABCDEFG", [0, 1, 0, 1, 0, 1, 0]))))
    day = pd.Timestamp("2024-08-01")
    report = OutreachReport(day, day + pd.Timedelta(days=90), day + pd.Timedelta(days=95), Path("plan.parquet"),
                            effect, contacts_known=False, paths={})
    text = format_outreach_report(report)
    assert "The overall ITT interval contains 0: 5 assigned against 2 held out cannot tell" in text
    assert "PP is empty" not in text  # no contact history at all is said once, differently

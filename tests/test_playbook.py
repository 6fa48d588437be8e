"""``outreach.playbook.assign_outreach``: rules, team capacity, cooldown and the control group."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from retain.config import ConfigError, Playbook, PlaybookRule, Team, load_config
from retain.outreach.playbook import ASSIGNED, COOLDOWN, HELD_OUT, QUEUED, assign_outreach

REPO = Path(__file__).resolve().parents[1]
AS_OF = pd.Timestamp("2025-06-01")
TIERS = ["high", "medium", "low"]


def _ranked(rows: list[tuple[str, str, str, str | None, str | None]]) -> pd.DataFrame:
    """Customers in value-at-risk order: (id, tier, segment, reason_1_signal, reason_2_signal)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "risk_tier", "segment", "reason_1_signal", "reason_2_signal"])
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def _actions(out: pd.DataFrame) -> dict[str, str]:
    return dict(zip(out["customer_id"], out["recommended_action"], strict=True))


def _statuses(out: pd.DataFrame) -> dict[str, str]:
    return dict(zip(out["customer_id"], out["outreach_status"], strict=True))


PLAYBOOK = Playbook(
    default_action="email",
    default_team="success",
    teams=(Team(name="leads", daily_capacity=2), Team(name="success")),
    rules=(
        PlaybookRule(signal="slow_first_response", action="senior call", team="leads"),
        PlaybookRule(signal="open_tickets", segment="enterprise", min_tier="high", action="account manager", team="leads"),
        PlaybookRule(signal="open_tickets", action="escalate", team="leads"),
        PlaybookRule(signal="repeated_contacts", action="review history", team="leads"),
        PlaybookRule(min_tier="high", action="success call"),
    ),
    cooldown_days=30,
)


def test_the_first_rule_in_playbook_order_matching_any_reason_decides() -> None:
    ranked = _ranked(
        [
            # the symptom comes first among the reasons, the cause second: the cause's rule wins
            ("A", "medium", "smb", "repeated_contacts", "slow_first_response"),
            ("B", "high", "enterprise", "open_tickets", None),  # segment and tier rule before the plain one
            ("C", "medium", "enterprise", "open_tickets", None),  # below high: the plain rule
            ("D", "high", "consumer", "tenure", None),  # no signal rule: the tier-only rule
            ("E", "low", "consumer", "tenure", None),  # nothing matches: the default
        ]
    )
    playbook = PLAYBOOK.model_copy(update={"teams": ()})  # no capacity limit here
    out = assign_outreach(ranked, playbook, None, AS_OF, TIERS)
    assert _actions(out) == {
        "A": "senior call", "B": "account manager", "C": "escalate", "D": "success call", "E": "email",
    }
    assert out["team"].tolist() == ["leads", "leads", "leads", "success", "success"]
    assert set(out["outreach_status"]) == {ASSIGNED}
    assert "recommended_action" not in ranked.columns  # input not modified


def test_a_missing_segment_matches_no_segment_rule() -> None:
    ranked = _ranked([("A", "high", "smb", "open_tickets", None), ("B", "high", "smb", "open_tickets", None)])
    ranked["segment"] = pd.Series(["enterprise", pd.NA], dtype="string")
    out = assign_outreach(ranked, PLAYBOOK.model_copy(update={"teams": ()}), None, AS_OF, TIERS)
    assert _actions(out) == {"A": "account manager", "B": "escalate"}


def test_a_full_team_queues_its_customers_without_moving_them_to_the_default_team() -> None:
    ranked = _ranked(
        [
            ("A", "high", "smb", "open_tickets", None),
            ("B", "high", "smb", "tenure", None),  # success team: unlimited
            ("C", "medium", "smb", "open_tickets", None),
            ("D", "medium", "smb", "repeated_contacts", None),  # leads full: queued
            ("E", "low", "smb", "slow_first_response", None),  # leads full: queued
        ]
    )
    out = assign_outreach(ranked, PLAYBOOK, None, AS_OF, TIERS)
    assert _statuses(out) == {"A": ASSIGNED, "B": ASSIGNED, "C": ASSIGNED, "D": QUEUED, "E": QUEUED}
    # queued customers keep the action and team that fit them, for a later day
    assert _actions(out)["D"] == "review history" and out.loc[3, "team"] == "leads"
    assert out.loc[4, "team"] == "leads"


def test_customers_contacted_within_the_cooldown_are_skipped_and_use_no_capacity() -> None:
    ranked = _ranked(
        [
            ("A", "high", "smb", "open_tickets", None),
            ("B", "high", "smb", "open_tickets", None),
            ("C", "high", "smb", "open_tickets", None),
            ("D", "high", "smb", "open_tickets", None),
        ]
    )
    history = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "contacted_at": pd.to_datetime(
                [
                    "2025-01-01 00:00",  # long ago ...
                    "2025-05-02 12:00",  # ... and again 29.5 days before as_of: cooldown
                    "2025-05-01 23:00",  # 30 days and one hour before: free again
                    "2025-06-02 00:00",  # after as_of: not known yet, ignored
                ]
            ),
        }
    )
    out = assign_outreach(ranked, PLAYBOOK, history, AS_OF, TIERS)
    assert _statuses(out) == {"A": COOLDOWN, "B": ASSIGNED, "C": ASSIGNED, "D": QUEUED}
    assert out.loc[0, "last_contacted_at"] == pd.Timestamp("2025-05-02 12:00")
    assert pd.isna(out.loc[2, "last_contacted_at"])
    no_cooldown = assign_outreach(ranked, PLAYBOOK.model_copy(update={"cooldown_days": 0}), history, AS_OF, TIERS)
    assert no_cooldown["outreach_status"].tolist() == [ASSIGNED, ASSIGNED, QUEUED, QUEUED]


def test_control_customers_are_held_out_without_using_capacity() -> None:
    ranked = _ranked(
        [
            ("A", "high", "smb", "open_tickets", None),
            ("B", "high", "smb", "open_tickets", None),
            ("C", "high", "smb", "open_tickets", None),
            ("D", "high", "smb", "open_tickets", None),
            ("E", "high", "smb", "open_tickets", None),
        ]
    ).assign(control=[False, True, False, False, True])
    out = assign_outreach(ranked, PLAYBOOK, None, AS_OF, TIERS)
    # B would have been contacted: held out; E comes after the team is full: queued like D
    assert _statuses(out) == {"A": ASSIGNED, "B": HELD_OUT, "C": ASSIGNED, "D": QUEUED, "E": QUEUED}


def test_a_rule_needs_a_condition_and_named_teams_must_be_listed() -> None:
    with pytest.raises(ValueError, match="at least one of signal, min_tier or segment"):
        PlaybookRule(action="call")
    with pytest.raises(ValueError, match=r"team\(s\) \['billing'\] are not listed"):
        Playbook(
            default_action="email",
            default_team="success",
            teams=(Team(name="success"),),
            rules=(PlaybookRule(signal="theme_billing", action="audit", team="billing"),),
        )
    # without a teams section every team is unlimited
    unlimited = Playbook(default_action="email", rules=(PlaybookRule(signal="x", action="a", team="any"),))
    assert unlimited.capacity("any") is None


def test_an_old_playbook_file_still_loads_with_the_new_defaults(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    path.write_text(
        "default_action: check in\nrules:\n  - signal: open_tickets\n    action: escalate\n"
        "  - signal: theme_pricing\n    action: discount\n    min_tier: medium\n"
    )
    playbook = load_config(path, Playbook)
    assert playbook.default_team == "customer_success" and playbook.teams == ()
    assert playbook.cooldown_days == 30 and playbook.control_share == 0.1 and not playbook.include_control
    path.write_text("default_action: x\ncontrol_share: 1.0\n")
    with pytest.raises(ConfigError, match="control_share"):
        load_config(path, Playbook)


def test_the_shipped_playbook_gives_a_demo_like_top_ten_varied_actions() -> None:
    """The demo's top customers all have repeated contacts and open tickets first; their third
    reason names the cause, and the shipped playbook acts on the cause."""
    playbook = load_config(REPO / "configs" / "playbook.yaml", Playbook)
    third = [
        "slow_first_response", "theme_unresolved_issue", "theme_slow_support", "slow_resolution",
        "tenure", "theme_billing", "theme_product_bugs", "low_csat", "tenure", "escalations",
    ]
    ranked = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(10)],
            "risk_tier": ["high"] * 5 + ["medium"] * 5,
            "segment": ["enterprise"] * 10,
            "reason_1_signal": ["repeated_contacts"] * 10,
            "reason_2_signal": ["open_tickets"] * 10,
            "reason_3_signal": third,
        }
    )
    out = assign_outreach(ranked, playbook, None, AS_OF, TIERS)
    assert out["recommended_action"].nunique() >= 8
    assert "account_management" in set(out["team"])  # high-risk enterprise, open ticket, no cause
    assert (out["outreach_status"] == ASSIGNED).all()


def test_the_contact_log_is_read_with_ids_as_strings_and_bad_rows_refused(tmp_path: Path) -> None:
    from retain.contracts import ContractError
    from retain.data import read_contacts

    path = tmp_path / "contacts.csv"
    path.write_text("customer_id,contacted_at,action\n 17 ,2025-05-02 12:00,call\nC2,2025-05-03,mail\n")
    contacts = read_contacts(path)
    assert contacts["customer_id"].tolist() == ["17", "C2"]
    assert contacts["contacted_at"].tolist() == [pd.Timestamp("2025-05-02 12:00"), pd.Timestamp("2025-05-03")]
    path.write_text("customer_id,contacted_at\nC1,2025-05-02\n,2025-05-03\nC3,soon\n")
    with pytest.raises(ContractError, match=r"2 row\(s\) of the outreach history .* \(first at row 2\)"):
        read_contacts(path)
    path.write_text("customer_id,when\nC1,2025-05-02\n")
    with pytest.raises(ContractError, match=r"needs column\(s\) \['contacted_at'\]"):
        read_contacts(path)


def _one_by_one(ranked: pd.DataFrame, playbook: Playbook, cooled: set[str]) -> tuple[list[str], list[str], list[str]]:
    """The rules of assign_outreach's docstring applied one customer at a time, in list order."""
    from retain.outreach.playbook import matching_rule

    rank_of = {name: i for i, name in enumerate(TIERS)}
    used: dict[str, int] = {}
    actions, teams, statuses = [], [], []
    for row in ranked.itertuples(index=False):
        rule = matching_rule(
            [row.reason_1_signal, row.reason_2_signal], rank_of[row.risk_tier], row.segment, playbook, rank_of
        )
        team = playbook.team_of(rule)
        actions.append(rule.action if rule is not None else playbook.default_action)
        teams.append(team)
        capacity = playbook.capacity(team)
        if row.customer_id in cooled:
            statuses.append(COOLDOWN)
        elif capacity is not None and used.get(team, 0) >= capacity:
            statuses.append(QUEUED)
        elif row.control:
            statuses.append(HELD_OUT)
        else:
            used[team] = used.get(team, 0) + 1
            statuses.append(ASSIGNED)
    return actions, teams, statuses


@pytest.mark.parametrize("seed", range(5))
def test_a_long_list_gets_what_one_customer_at_a_time_gives(seed: int) -> None:
    """The list is decided per combination of reasons, tier and segment and capacity is counted
    in bulk; on random lists that is what deciding each customer in turn gives."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 400
    signals = np.array(["slow_first_response", "open_tickets", "low_csat", None], dtype=object)
    ranked = _ranked([
        (f"C{i}", str(rng.choice(TIERS)), rng.choice(np.array(["enterprise", "smb", None], dtype=object)),
         rng.choice(signals), rng.choice(signals))
        for i in range(n)
    ])
    ranked["control"] = rng.random(n) < 0.2
    cooled = {f"C{i}" for i in rng.choice(n, 40, replace=False)}
    history = pd.DataFrame({"customer_id": sorted(cooled), "contacted_at": AS_OF - pd.Timedelta(days=3)})
    playbook = PLAYBOOK.model_copy(update={"cooldown_days": 30})
    out = assign_outreach(ranked, playbook, history, AS_OF, TIERS)
    actions, teams, statuses = _one_by_one(ranked, playbook, cooled)
    assert out["recommended_action"].tolist() == actions
    assert out["team"].tolist() == teams
    assert out["outreach_status"].tolist() == statuses
    assert set(statuses) == {ASSIGNED, QUEUED, COOLDOWN, HELD_OUT}

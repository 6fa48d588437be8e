"""Outreach: the ranked at-risk list and what is done with it.

``retain.outreach.ranking`` turns churn probabilities and reasons into the list ordered by value
at risk, with risk tiers and the playbook's recommended action.
"""

from __future__ import annotations

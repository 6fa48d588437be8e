"""Outreach: the ranked at-risk list and what is done with it.

``ranking`` orders customers by value at risk with risk tiers; ``control`` holds a random group
out per risk decile; ``playbook`` gives each customer one action and team within each team's
daily capacity and the cooldown; ``effect`` compares churn of contacted and control customers
once the horizon has passed. See ``docs/outreach.md``.
"""

from __future__ import annotations

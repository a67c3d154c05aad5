"""24SEVEN Privacy Statement (rules/24seven.yaml), promise by promise, on its demo.

Each test is named after a row of the 24SEVEN table in rules/README.md and quotes that row's
promise (the README's paraphrase). The statement gives no numbers; the pack's chosen ones are
what these tests pin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from .conftest import NOW, SECOND, DemoWorld, after_year_end, plus

PACK = "24seven"


@pytest.fixture
def world(demo_world: Callable[[str], DemoWorld]) -> DemoWorld:
    return demo_world(PACK)


def test_default_delete_once_the_purpose_is_served(world: DemoWorld) -> None:
    """Default: data is deleted or anonymized once its purpose is served."""
    for dataset in world.config.settings.datasets:
        actions = {rule.action for rule in world.config.rules_for(dataset)}
        assert "delete" in actions, f"{dataset} would be kept forever"


def test_grace_period_after_the_subscription_ends(world: DemoWorld) -> None:
    """After a subscription ends, data stays for a set time to guard against erroneous deletion."""
    ended = world.event(104, "terminated")
    for rule, dataset in (
        ("24seven.account-profile.post-subscription", "profiles"),
        ("24seven.usage-logs.post-subscription", "usage_events"),
    ):
        key = world.key(dataset, account_id=104)
        world.timeline(
            dataset, key, rule, start=ended, due=plus(ended, "P30D"), overdue=plus(ended, "P60D")
        )
    world.run(plus(ended, "P30D") - SECOND, rules=("24seven.account-profile.post-subscription",))
    assert world.row("profiles", "104") is not None, "deleted inside the grace period"
    invoice = world.keys("invoices", account_id=104)[-1]
    rule = "24seven.billing.post-subscription"
    assert world.status("invoices", invoice, rule, plus(ended, "P30D")) == "blocked by a keep rule"


def test_backups_outlive_primary_retention_for_one_cycle(world: DemoWorld) -> None:
    """Backups are one reason data outlives its primary retention."""
    key = world.key("backups")
    created = world.stamp("backups", key, "created")
    world.timeline(
        "backups", key, "24seven.backups.rotation", start=created, due=plus(created, "P90D")
    )
    archives = sorted((world.directory / "files" / "backups").iterdir())
    assert len(archives) > 10
    world.run(rules=("24seven.backups.rotation",))
    for archive in archives:
        made = (
            dt.datetime.fromtimestamp(archive.stat().st_mtime, dt.UTC) if archive.exists() else None
        )
        assert made is None or plus(made, "P90D") > NOW, archive.name
    assert any(a.exists() for a in archives) and not all(a.exists() for a in archives)


def test_data_is_kept_when_the_law_requires_it(world: DemoWorld) -> None:
    """Data is kept when the law requires it."""
    rule = "24seven.billing.post-subscription"
    invoice = world.keys("invoices", account_id=105)[0]
    world.run(rules=(rule, "24seven.account-profile.post-subscription"))
    assert world.row("profiles", "105") is None
    assert world.row("invoices", invoice) is not None
    kept_until = after_year_end(world.stamp("invoices", invoice, "created"), "P6Y")
    assert world.status("invoices", invoice, rule, kept_until - SECOND) == "blocked by a keep rule"
    assert world.status("invoices", invoice, rule, kept_until) == "due"


def test_data_is_kept_for_an_ongoing_dispute(world: DemoWorld) -> None:
    """Data is kept to pursue remedies or limit damages, e.g. an ongoing dispute or
    investigation."""
    rule = "24seven.account-profile.post-subscription"
    assert world.status("profiles", "106", rule) == "held"
    world.run(rules=(rule,))
    assert world.row("profiles", "106") is not None
    assert world.row("profiles", "107") is None, "the released hold no longer protects 107"


def test_support_cases_answer_future_issues(world: DemoWorld) -> None:
    """Data is kept to solve a recurring problem or answer future issues."""
    key = world.key("support_tickets", account_id=101)
    created = world.stamp("support_tickets", key, "created")
    world.timeline(
        "support_tickets",
        key,
        "24seven.support-data.future-issues",
        start=created,
        due=plus(created, "P2Y"),
    )


def test_client_relationship_and_marketing_contacts(world: DemoWorld) -> None:
    """Client-relationship and marketing contacts, incl. contacts from decision-maker registries."""
    rule = "24seven.contact-details.inactive"
    for key in world.keys("contacts", status="prospect"):
        last = world.stamp("contacts", key, "last_used")
        world.timeline("contacts", key, rule, start=last, due=plus(last, "P3Y"))


def test_service_data(world: DemoWorld) -> None:
    """Service data, incl. what is submitted when subscribing, reseller-provided credentials and
    social-login e-mail."""
    assert (
        world.status(
            "profiles", "101", "24seven.account-profile.post-subscription", plus(NOW, "P10Y")
        )
        == "clock not started"
    )
    old = world.key("usage_events", account_id=101)
    created = world.stamp("usage_events", old, "created")
    world.timeline(
        "usage_events", old, "24seven.usage-logs.rolling", start=created, due=plus(created, "P13M")
    )


def test_security_data_for_fraud_prevention(world: DemoWorld) -> None:
    """Security data kept to keep clients safe; fraud prevention."""
    key = world.key("security_events")
    created = world.stamp("security_events", key, "created")
    world.timeline(
        "security_events",
        key,
        "24seven.security-logs.rolling",
        start=created,
        due=plus(created, "P1Y"),
    )


def test_analytics_data_is_pseudonymous(world: DemoWorld) -> None:
    """Analytics data is anonymous or pseudonymous; customer-journey tracking."""
    rule = "24seven.cookies-analytics.pseudonymize"
    key = world.keys("analytics_events")[-1]
    created = world.stamp("analytics_events", key, "created")
    world.timeline(
        "analytics_events",
        key,
        rule,
        start=created,
        due=plus(created, "P1D"),
        overdue=plus(created, "P2D"),
    )
    world.run(rules=(rule, "24seven.cookies-analytics.expiry"))
    for key in world.keys("analytics_events"):
        record = world.row("analytics_events", key)
        assert record is not None
        created = world.stamp("analytics_events", key, "created")
        if plus(created, "P1D") <= NOW:
            assert record["ip"].endswith(".0") and record["user_agent"] == "[redacted]"
        assert plus(created, "P13M") > NOW

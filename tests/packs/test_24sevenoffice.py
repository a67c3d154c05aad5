"""24SevenOffice Privacy Notice (rules/24sevenoffice.yaml), promise by promise, on its demo.

Each test is named after a row of the 24SevenOffice table in rules/README.md and quotes that
row's promise (the README's paraphrase). Times are pinned: the demo is built as of NOW and the
engine is asked about other moments relative to the demo's own events.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest

from .conftest import NOW, SECOND, DemoWorld, after_year_end, plus, policy_says

PACK = "24sevenoffice"
CONTENT = "24sevenoffice.customer-content.post-termination"
WITHIN_THREE_MONTHS = (
    "24SevenOffice will start the deletion of data processed on behalf of the customer within "
    "three months after the termination of the Customer License Agreement (CLA)."
)


@pytest.fixture
def world(demo_world: Callable[[str], DemoWorld]) -> DemoWorld:
    return demo_world(PACK)


def test_data_is_kept_no_longer_than_law_or_purpose(world: DemoWorld) -> None:
    """Data is kept no longer than the law requires or a purpose exists."""
    for dataset in world.config.settings.datasets:
        actions = {rule.action for rule in world.config.rules_for(dataset)}
        assert "delete" in actions, f"{dataset} would be kept forever"


def test_data_is_stored_for_the_cla_term_or_until_the_account_is_deleted(world: DemoWorld) -> None:
    """Data is stored for the term of the CLA; until no longer needed or the account is deleted,
    whichever first."""
    active = world.key("documents", account_id=101, title="Price list")
    assert world.status("documents", active, CONTENT, plus(NOW, "P10Y")) == "clock not started"
    closed = world.key("documents", account_id=103)  # account deleted, no contract end recorded
    start = world.event(103, "closed")
    world.timeline(
        "documents",
        closed,
        CONTENT,
        start=start,
        due=plus(start, "P2M"),
        overdue=plus(start, "P3M"),
    )
    ended = world.event(113, "terminated")
    for rule, grace in (
        ("24sevenoffice.accounting.post-termination", "P2M"),
        ("24sevenoffice.account-profile.post-termination", "P2M"),
        ("24sevenoffice.support-data.post-termination", "P1M"),
        ("24sevenoffice.usage-logs.post-termination", "P1M"),
    ):
        dataset = world.config.datasets_for(world.config.rule(rule))[0]
        key = world.key(dataset, account_id=113)
        world.timeline(
            dataset, key, rule, start=ended, due=plus(ended, grace), overdue=plus(ended, "P3M")
        )


def test_export_assistance_at_termination(world: DemoWorld) -> None:
    """Export assistance at termination."""
    key = world.key("documents", account_id=113, title="Price list")
    ended = world.event(113, "terminated")
    assert world.status("documents", key, CONTENT, plus(ended, "P2M") - SECOND) == "not yet due"
    world.run(plus(ended, "P2M") - SECOND)
    assert world.row("documents", key) is not None, "deleted inside the export window"
    assert world.row("profiles", "113") is not None, "the login goes before the content"


def test_deletion_starts_within_three_months_after_the_cla_ends(world: DemoWorld) -> None:
    """Deletion of customer data starts within three months after the CLA ends."""
    policy_says(PACK, WITHIN_THREE_MONTHS)
    key = world.key("documents", account_id=113, title="Price list")
    ended = world.event(113, "terminated")
    assert world.status("documents", key, CONTENT, plus(ended, "P2M") - SECOND) == "not yet due"
    assert world.status("documents", key, CONTENT, plus(ended, "P2M")) == "due"
    # the promise is the deadline: due up to the moment three months have passed, overdue
    # once past it, not a day later
    assert world.status("documents", key, CONTENT, plus(ended, "P3M")) == "due"
    assert world.status("documents", key, CONTENT, plus(ended, "P3M") + SECOND) == "overdue"
    ledger = world.key("ledger_entries", account_id=113)
    accounting = world.verdict(
        "ledger_entries", ledger, "24sevenoffice.accounting.post-termination"
    )
    assert accounting.overdue_at == plus(ended, "P3M")
    late = world.plan(CONTENT)  # 105 ended 130 days ago and nothing was deleted
    assert late.overdue == len(world.keys("documents", account_id=105)) + len(
        world.keys("documents", account_id=107)
    )
    world.run(plus(ended, "P2M") - SECOND, rules=(CONTENT,))
    assert world.row("documents", key) is not None, "deleted inside the export window"
    world.run(plus(ended, "P2M"), rules=(CONTENT,))
    assert world.row("documents", key) is None
    assert world.keys("documents", account_id=105) == []


def test_deletion_starts_within_three_months_override_one_month_export_window(
    world: DemoWorld,
) -> None:
    """Deletion of customer data starts within three months after the CLA ends: a deployer who
    gives customers a shorter export window sets it in config, not in the pack."""
    world.override(CONTENT, grace="P1M", within="P2M")
    key = world.key("documents", account_id=104, title="Price list")
    ended = world.event(104, "terminated")
    assert world.status("documents", key, CONTENT, plus(ended, "P1M") - SECOND) == "not yet due"
    assert world.status("documents", key, CONTENT, plus(ended, "P1M")) == "due"
    assert world.status("documents", key, CONTENT, plus(ended, "P3M")) == "due"
    assert world.status("documents", key, CONTENT, plus(ended, "P3M") + SECOND) == "overdue"


def test_deletion_may_be_delayed_for_an_open_legal_issue(world: DemoWorld) -> None:
    """Deletion may be delayed when termination terms are unmet, e.g. an open legal issue."""
    held = world.keys("documents", account_id=106)
    assert held
    assert {world.status("documents", k, CONTENT) for k in held} == {"held"}
    assert world.explain("documents", held[0]).holds == ("legal-2027-017",)
    world.run(rules=(CONTENT,))
    assert all(world.row("documents", k) is not None for k in held)
    world.set_hold("legal-2027-017", active=False)
    assert world.status("documents", held[0], CONTENT) == "overdue"
    world.run(rules=(CONTENT,))
    assert all(world.row("documents", k) is None for k in held)


def test_released_hold_lets_the_rules_catch_up(world: DemoWorld) -> None:
    """Deletion may be delayed when termination terms are unmet, e.g. an open legal issue: once
    legal releases the hold, the overdue deletion happens on the next run."""
    assert world.hold_ids()["legal-2027-009"] is False
    released = world.keys("documents", account_id=107)
    assert {world.status("documents", k, CONTENT) for k in released} == {"overdue"}


def test_accounting_data_is_kept_only_under_an_extended_storage_agreement(world: DemoWorld) -> None:
    """Accounting data must be kept for a legal period; if the CLA ends first, the customer agrees
    extended storage or exports."""
    rule = "24sevenoffice.accounting.post-termination"
    key = world.key("ledger_entries", account_id=105)  # contract ended 130 days ago
    assert world.status("ledger_entries", key, rule) == "overdue"
    world.add_hold(
        id="extended-storage-105",
        active=True,
        reason="Customer 105 agreed extended storage of its ledger",
        subjects={"account": [105]},
        rules=[rule],
    )
    assert world.status("ledger_entries", key, rule) == "held"
    assert world.status("documents", world.key("documents", account_id=105), CONTENT) == "overdue"
    world.run(rules=(rule, CONTENT))
    assert world.row("ledger_entries", key) is not None
    assert world.keys("documents", account_id=105) == []


def test_own_invoicing_records_survive_the_account_until_the_statutory_period_ends(
    world: DemoWorld,
) -> None:
    """24SevenOffice's own invoicing and collection records."""
    rule = "24sevenoffice.billing.post-termination"
    invoice = world.keys("invoices", account_id=104)[-1]
    old = world.keys("invoices", account_id=111)  # closed ten years ago: bookkeeping period over
    assert world.status("invoices", invoice, rule) == "blocked by a keep rule"
    world.run(rules=(rule, "24sevenoffice.account-profile.post-termination"))
    assert world.row("profiles", "104") is None, "the account's profile is deleted"
    assert world.row("invoices", invoice) is not None, "its invoices are not"
    kept_until = after_year_end(world.stamp("invoices", invoice, "created"), "P5Y")
    assert world.status("invoices", invoice, rule, kept_until - SECOND) == "blocked by a keep rule"
    assert world.status("invoices", invoice, rule, kept_until) == "due"
    world.run(kept_until, rules=(rule,))
    assert world.row("invoices", invoice) is None
    assert old and all(world.row("invoices", k) is None for k in old)


def test_customer_content_incl_ledger_and_payroll_goes_with_the_cla(world: DemoWorld) -> None:
    """Customer content incl. ledger, payroll (SSN, bank account, absences), mobile
    time/expense/trip data."""
    world.run(rules=(CONTENT, "24sevenoffice.accounting.post-termination"))
    # 113's contract ended 45 days ago (still in its two-month export window), 104's 75 days
    # ago (past it, inside the three months), 105's 130 days ago
    for account, left in (
        (101, True), (102, True), (113, True), (104, False), (105, False), (106, True),
    ):  # fmt: skip
        assert bool(world.keys("documents", account_id=account)) is left, account
        assert bool(world.keys("ledger_entries", account_id=account)) is left, account


def test_account_information_goes_after_termination_or_on_request(world: DemoWorld) -> None:
    """Account information (names, usernames, phone, e-mail, billing info)."""
    requested = world.event(108, "erasure_requested")
    world.timeline(
        "profiles",
        "108",
        "24sevenoffice.account-profile.erasure",
        start=requested,
        due=requested,
        overdue=plus(requested, "P1M"),
    )
    ended = world.event(113, "terminated")
    world.timeline(
        "profiles",
        "113",
        "24sevenoffice.account-profile.post-termination",
        start=ended,
        due=plus(ended, "P2M"),
        overdue=plus(ended, "P3M"),
    )


def test_logins_last_as_long_as_the_content_they_export(world: DemoWorld) -> None:
    """Users can log in to export their content for as long as the content is kept."""
    policy_says(
        PACK,
        "Upon expiry or termination of this Agreement, 24SevenOffice shall provide assistance "
        "reasonably required by the customer to have the Personal data transferred in a "
        "suitable standard format",
    )
    for account in (103, 104, 113):
        login = world.verdict(
            "profiles", str(account), "24sevenoffice.account-profile.post-termination"
        )
        for key in world.keys("documents", account_id=account, status="active"):
            content = world.verdict("documents", key, CONTENT)
            assert login.due_at is not None and content.due_at is not None
            assert login.due_at >= content.due_at, account


def test_job_applications_go_months_after_the_decision(world: DemoWorld) -> None:
    """Job applications are handled on dedicated platforms."""
    rule = "24sevenoffice.job-applications.after-decision"
    rejected = world.key("job_applications", status="rejected", consent=False)
    decided = world.stamp("job_applications", rejected, "updated")
    world.timeline("job_applications", rejected, rule, start=decided, due=plus(decided, "P6M"))
    hired = world.key("job_applications", status="hired")
    assert world.status("job_applications", hired, rule) == "not covered (where filter)"


def test_payment_data_card_numbers_are_masked_then_deleted(world: DemoWorld) -> None:
    """Payment data (card number, security code) to complete purchases and detect fraud."""
    assert world.plan("24sevenoffice.payment-cards.mask").overdue > 0
    world.run(rules=("24sevenoffice.payment-cards.mask",))
    cards = [world.row("payments", k) for k in world.keys("payments")]
    assert cards
    held = {k for k in world.keys("payments", account_id=106)}
    for key, card in zip(world.keys("payments"), cards, strict=True):
        assert card is not None
        if key not in held:
            assert re.fullmatch(r"\*{12}\d{4}", card["card_number"]), card
    old = world.key("payments", account_id=101)
    created = world.stamp("payments", old, "created")
    assert (
        world.status(
            "payments", old, "24sevenoffice.payment-cards.fraud-window", plus(created, "P18M")
        )
        == "due"
    )


def test_support_data_is_kept_to_find_earlier_communication(world: DemoWorld) -> None:
    """Support data from help-desk e-mail, phone and chat, kept to find earlier communication."""
    rule = "24sevenoffice.support-data.rolling"
    oldest = world.key("support_tickets", account_id=101)
    created = world.stamp("support_tickets", oldest, "created")
    world.timeline("support_tickets", oldest, rule, start=created, due=plus(created, "P2Y"))
    erased = world.key("support_tickets", account_id=109)
    assert (
        world.status("support_tickets", erased, "24sevenoffice.support-data.erasure") == "overdue"
    )


def test_security_data_prevents_abuse_then_goes(world: DemoWorld) -> None:
    """Data used to prevent abuse and notify suspected breaches; IP for identity confirmation."""
    rule = "24sevenoffice.security-logs.rolling"
    key = world.key("security_events")
    created = world.stamp("security_events", key, "created")
    world.timeline("security_events", key, rule, start=created, due=plus(created, "P1Y"))


def test_routing_ips_are_truncated_then_logs_deleted(world: DemoWorld) -> None:
    """IP used to route visitors to the right regional site."""
    world.run(rules=("24sevenoffice.access-logs.anonymize", "24sevenoffice.access-logs.expiry"))
    for key in world.keys("access_logs"):
        record = world.row("access_logs", key)
        assert record is not None
        created = world.stamp("access_logs", key, "created")
        if plus(created, "P30D") <= NOW:
            assert record["ip"].endswith(".0") and record["user_agent"] == "[redacted]"
        assert plus(created, "P13M") > NOW


def test_sales_crm_contacts_go_after_inactivity_or_on_request(world: DemoWorld) -> None:
    """Data used to sell and market to potential customers; sales CRM."""
    stale = world.key("contacts", status="prospect")
    last = world.stamp("contacts", stale, "last_used")
    world.timeline(
        "contacts",
        stale,
        "24sevenoffice.contact-details.inactive",
        start=last,
        due=plus(last, "P3Y"),
    )
    asked = world.keys("contacts", status="erasure_requested")
    rule = "24sevenoffice.contact-details.erasure"
    assert [world.status("contacts", k, rule) for k in asked] == ["due", "overdue"]


def test_newsletter_opt_outs_are_pseudonymized_and_erasure_deletes(world: DemoWorld) -> None:
    """Newsletters, re-targeting, in-app messages to customers."""
    rule = "24sevenoffice.marketing.consent-revoked"
    opted_out = world.keys("newsletter_subscriptions", account_id=None, consent=False)
    assert [world.status("newsletter_subscriptions", k, rule) for k in opted_out] == [
        "due",
        "overdue",
    ]
    world.run(rules=(rule, "24sevenoffice.marketing.erasure"))
    for key in opted_out:
        record = world.row("newsletter_subscriptions", key)
        assert record is not None
        assert record["name"] == "[redacted]" and record["phone"] is None
        assert "@" not in record["email"]
    assert world.keys("newsletter_subscriptions", account_id=108) == []


def test_usage_patterns_are_used_without_identifying_the_user(world: DemoWorld) -> None:
    """Usage patterns for development, without identifying the user; Intercom statistics."""
    key = world.key("usage_events", account_id=101)
    created = world.stamp("usage_events", key, "created")
    world.timeline(
        "usage_events",
        key,
        "24sevenoffice.usage-logs.rolling",
        start=created,
        due=plus(created, "P13M"),
    )
    policy_says(
        PACK,
        "This usage is performed without identifying the individual user of the 24SevenOffice "
        "Service.",
    )
    rule = "24sevenoffice.usage-logs.de-identify"
    recent = world.keys("usage_events", account_id=102)[-1]
    made = world.stamp("usage_events", recent, "created")
    world.timeline("usage_events", recent, rule, start=made, due=made, overdue=plus(made, "P1D"))
    world.run()  # records an earlier-due delete rule removes are not anonymized first
    for key in world.keys("usage_events"):
        record = world.row("usage_events", key)
        assert record is not None
        if record["account_id"] is not None:  # only what legal holds may stay linked
            assert record["account_id"] == 106, key
            continue
        assert record["ip"] is None and record["user_agent"] == "[redacted]", key
    pattern = world.row("usage_events", recent)
    assert pattern is not None and pattern["title"] == "opened dashboard", "the pattern stays"


def test_testimonials_need_the_persons_consent(world: DemoWorld) -> None:
    """Testimonials and blog posts naming a person only with consent."""
    rule = "24sevenoffice.public-posts.consent-revoked"
    revoked = world.key("forum_posts", title="Customer testimonial", consent=False)
    when = world.stamp("forum_posts", revoked, "updated")
    world.timeline("forum_posts", revoked, rule, start=when, due=when, overdue=plus(when, "P30D"))
    consenting = world.key("forum_posts", account_id=101)
    assert world.status("forum_posts", consenting, rule) == "not covered (where filter)"


def test_cookie_consent_can_be_revoked(world: DemoWorld) -> None:
    """Cookie consent can be given or revoked; separate cookie policy."""
    revoked = world.keys("analytics_events", consent=False)
    rule = "24sevenoffice.cookies-analytics.consent-revoked"
    assert [world.status("analytics_events", k, rule) for k in revoked] == ["due", "overdue"]
    key = world.key("analytics_events", consent=True)
    created = world.stamp("analytics_events", key, "created")
    world.timeline(
        "analytics_events",
        key,
        "24sevenoffice.cookies-analytics.expiry",
        start=created,
        due=plus(created, "P13M"),
    )


def test_consent_may_be_revoked(world: DemoWorld) -> None:
    """Consent may be revoked."""
    for rule in (
        "24sevenoffice.marketing.consent-revoked",
        "24sevenoffice.cookies-analytics.consent-revoked",
        "24sevenoffice.public-posts.consent-revoked",
    ):
        plan = world.plan(rule)
        assert plan.actionable > 0, rule
    world.run(
        rules=(
            "24sevenoffice.cookies-analytics.consent-revoked",
            "24sevenoffice.public-posts.consent-revoked",
        )
    )
    for rule in (
        "24sevenoffice.cookies-analytics.consent-revoked",
        "24sevenoffice.public-posts.consent-revoked",
    ):
        assert world.plan(rule).actionable == 0


def test_right_to_be_forgotten(world: DemoWorld) -> None:
    """Right to be forgotten."""
    assert world.plan("24sevenoffice.account-profile.erasure").overdue == 1  # 109: 40 days ago
    # every rule: of a record an erasure rule and an earlier-due delete rule (rolling usage logs)
    # would both delete, the earlier one acts (DESIGN.md's precedence)
    world.run()
    for dataset in ("profiles", "support_tickets", "newsletter_subscriptions", "usage_events"):
        assert world.keys(dataset, account_id=108) == [], dataset
    assert world.keys("invoices", account_id=108), "invoices wait for the bookkeeping period"


def test_california_right_of_deletion(world: DemoWorld) -> None:
    """California right of deletion, subject to exceptions."""
    requested = world.event(108, "erasure_requested")
    for rule in world.config.rules:
        if rule.after.refs and str(rule.after) == "subject.erasure_requested":
            verdict_due = plus(requested, str(rule.within) if rule.within else "P0D")
            assert verdict_due <= requested + dt.timedelta(days=45), rule.id


def test_backups_age_out(world: DemoWorld) -> None:
    """Backups."""
    key = world.key("backups")
    created = world.stamp("backups", key, "created")
    world.timeline(
        "backups", key, "24sevenoffice.backups.rotation", start=created, due=plus(created, "P90D")
    )

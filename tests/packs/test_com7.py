"""Com7 Privacy Policy (rules/com7.yaml), promise by promise, on its demo.

Each test is named after a row of the Com7 table in rules/README.md and quotes that row's
promise (the README's paraphrase). The policy names no period; the pack's chosen numbers are
what these tests pin.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import NOW, SECOND, DemoWorld, after_year_end, plus, policy_says

PACK = "com7"
ERASURE_RULES = (
    ("com7.account-profile.erasure", "profiles"),
    ("com7.customer-content.erasure", "documents"),
    ("com7.support-data.erasure", "support_tickets"),
    ("com7.marketing.erasure", "newsletter_subscriptions"),
    ("com7.usage-logs.erasure", "usage_events"),
)
WITHOUT_ACCOUNT = (  # people with no account: the request is stamped on their own rows
    ("com7.contact-details.erasure", "contacts"),
    ("com7.marketing.subscriber-erasure", "newsletter_subscriptions"),
    ("com7.referral-emails.erasure", "referrals"),
    ("com7.job-applications.erasure", "job_applications"),
)
CHILD_RECORDS = (  # a child's records found one by one (is_child)
    ("com7.contact-details.child", "contacts"),
    ("com7.referral-emails.child", "referrals"),
    ("com7.job-applications.child", "job_applications"),
    ("com7.cookies-analytics.child", "analytics_events"),
)
ASK = (
    "you can ask us to show you what data we have about you, make us correct that data if it "
    "is inaccurate, and even ask us to delete or stop using the data."
)
CHILD = (
    "If we become aware that a child under 16 has provided us with personal information, we "
    "will take steps to delete such information."
)


@pytest.fixture
def world(demo_world: Callable[[str], DemoWorld]) -> DemoWorld:
    return demo_world(PACK)


def _rolling(world: DemoWorld, dataset: str, rule: str, period: str, **where: object) -> None:
    key = world.key(dataset, **where)
    created = world.stamp(dataset, key, "created")
    world.timeline(dataset, key, rule, start=created, due=plus(created, period))


def test_users_can_ask_for_deletion(world: DemoWorld) -> None:
    """Users can ask Com7 to delete their data or stop using it."""
    requested = world.event(108, "erasure_requested")
    for rule, dataset in ERASURE_RULES:
        key = world.key(dataset, account_id=108)
        world.timeline(
            dataset, key, rule, start=requested, due=requested, overdue=plus(requested, "P30D")
        )
        assert world.status(dataset, world.key(dataset, account_id=109), rule) == "overdue"
    world.run(rules=(*(rule for rule, _ in ERASURE_RULES), "com7.billing.account-end"))
    for _, dataset in ERASURE_RULES:
        assert world.keys(dataset, account_id=108) == [], dataset
    invoice = world.keys("invoices", account_id=108)[0]
    kept_until = after_year_end(world.stamp("invoices", invoice, "created"), "P5Y")
    assert world.status("invoices", invoice, "com7.billing.account-end", kept_until) == "due"


def test_marketing_contact_information(world: DemoWorld) -> None:
    """Contact information requested to market to website users."""
    key = world.key("contacts", status="prospect")
    last = world.stamp("contacts", key, "last_used")
    world.timeline(
        "contacts", key, "com7.contact-details.inactive", start=last, due=plus(last, "P3Y")
    )
    opted_out = world.key("newsletter_subscriptions", account_id=None, consent=False)
    assert world.status("newsletter_subscriptions", opted_out, "com7.marketing.opt-out") == "due"


def test_usage_metrics(world: DemoWorld) -> None:
    """Usage metrics collected to optimize the Services."""
    _rolling(world, "usage_events", "com7.usage-logs.rolling", "P13M", account_id=101)


def test_account_and_profile_information(world: DemoWorld) -> None:
    """Account and profile information (contact, profile, preferences), incl. data shared by
    sign-in services."""
    ended = world.event(113, "terminated")
    world.timeline(
        "profiles",
        "113",
        "com7.account-profile.account-end",
        start=ended,
        due=plus(ended, "P30D"),
        overdue=plus(ended, "P60D"),
    )
    assert (
        world.status("profiles", "101", "com7.account-profile.account-end", plus(NOW, "P10Y"))
        == "clock not started"
    )


def test_operational_data(world: DemoWorld) -> None:
    """Operational Data (products, sales, tax, the Subscriber's employees and customers); sale
    history shown."""
    rule = "com7.customer-content.account-end"
    ended = world.event(104, "terminated")
    key = world.key("documents", account_id=104)
    world.timeline(
        "documents", key, rule, start=ended, due=plus(ended, "P30D"), overdue=plus(ended, "P90D")
    )
    world.run(rules=(rule,))
    assert world.keys("documents", account_id=104) == []
    assert world.keys("documents", account_id=106), "held by the subpoena hold"
    assert world.keys("documents", account_id=101), "an active Subscriber keeps its data"


def test_web_forms_and_other_submissions(world: DemoWorld) -> None:
    """Web forms, surveys, events, downloads, social-media contacts."""
    rule = "com7.contact-details.inactive"
    stale = [
        k
        for k in world.keys("contacts", status="prospect")
        if plus(world.stamp("contacts", k, "last_used"), "P3Y") <= NOW
    ]
    assert stale
    world.run(rules=(rule,))
    assert all(world.row("contacts", k) is None for k in stale)
    assert world.keys("contacts", status="prospect")


def test_competitions_and_promotions(world: DemoWorld) -> None:
    """Competitions, promotions, rewards, sweepstakes."""
    policy_says(
        PACK,
        "To administer referral programs, rewards, surveys, sweepstakes, contests, or other "
        "promotional activities or events sponsored or managed by us or our business partners.",
    )
    rule = "com7.contact-details.promotion-ended"
    running, *ended = world.keys("contacts", purpose="promotion")
    assert world.status("contacts", running, rule, plus(NOW, "P10Y")) == "clock not started"
    assert len(ended) == 2
    for key in ended:  # counted from the promotion's end, not from the entry
        end = world.stamp("contacts", key, "promotion_ended")
        assert end > world.stamp("contacts", key, "created")
        world.timeline("contacts", key, rule, start=end, due=plus(end, "P1M"))
    world.run(rules=(rule,))
    assert world.keys("contacts", purpose="promotion") == [running, ended[1]]
    prospect = world.key("contacts", status="prospect")
    assert world.status("contacts", prospect, rule) == "not covered (where filter)"


def test_referral_programs(world: DemoWorld) -> None:
    """Referral programs."""
    _rolling(world, "referrals", "com7.referral-emails.program-window", "P90D")


def test_job_applications(world: DemoWorld) -> None:
    """Job applications."""
    rule = "com7.job-applications.after-decision"
    for status in ("rejected", "withdrawn"):
        key = world.key("job_applications", status=status)
        decided = world.stamp("job_applications", key, "updated")
        world.timeline("job_applications", key, rule, start=decided, due=plus(decided, "P6M"))
    for status in ("open", "hired"):
        key = world.key("job_applications", status=status)
        assert world.status("job_applications", key, rule) == "not covered (where filter)"


def test_support_requests(world: DemoWorld) -> None:
    """Support requests."""
    _rolling(world, "support_tickets", "com7.support-data.rolling", "P2Y", account_id=101)


def test_access_logs(world: DemoWorld) -> None:
    """Access logs with IP, browser, device ids, sometimes linked to personal data."""
    world.run(rules=("com7.access-logs.anonymize", "com7.access-logs.expiry"))
    emails = 0
    for key in world.keys("access_logs"):
        record = world.row("access_logs", key)
        assert record is not None
        created = world.stamp("access_logs", key, "created")
        assert plus(created, "P13M") > NOW
        if plus(created, "P30D") <= NOW:
            assert record["ip"].endswith(".0") and record["user_agent"] == "[redacted]"
            if record["email"] is not None:
                emails += 1
                assert not re.search(r"@example\.com$", record["email"])
    assert emails, "the demo logs some e-mail addresses"


def test_google_analytics_local_copies(world: DemoWorld) -> None:
    """Google Analytics."""
    _rolling(world, "analytics_events", "com7.cookies-analytics.expiry", "P13M", consent=True)


def test_cookies_and_web_beacons(world: DemoWorld) -> None:
    """Cookies and web beacons."""
    rule = "com7.cookies-analytics.expiry"
    world.run(rules=(rule,))
    for key in world.keys("analytics_events"):
        assert plus(world.stamp("analytics_events", key, "created"), "P13M") > NOW


def test_marketing_can_be_unsubscribed_from(world: DemoWorld) -> None:
    """Marketing can be unsubscribed from."""
    rule = "com7.marketing.opt-out"
    keys = world.keys("newsletter_subscriptions", account_id=None, consent=False)
    when = world.stamp("newsletter_subscriptions", keys[0], "updated")
    world.timeline(
        "newsletter_subscriptions", keys[0], rule, start=when, due=when, overdue=plus(when, "P10D")
    )
    world.run(rules=(rule,))
    for key in keys:
        record = world.row("newsletter_subscriptions", key)
        assert record is not None
        assert record["name"] == "[redacted]" and record["phone"] is None
        assert "@" not in record["email"]
    assert world.plan(rule).actionable == 0, "anonymizing twice changes nothing"


def test_investigating_fraud(world: DemoWorld) -> None:
    """Investigating fraud and unauthorized access."""
    _rolling(world, "security_events", "com7.security-logs.rolling", "P1Y")


def test_backup_service_providers(world: DemoWorld) -> None:
    """Backup service providers."""
    _rolling(world, "backups", "com7.backups.rotation", "P90D")


def test_disclosure_for_legal_process(world: DemoWorld) -> None:
    """Disclosure for legal process, enforcing terms, defending claims, protecting rights."""
    rule = "com7.account-profile.account-end"
    assert world.status("profiles", "106", rule) == "held"
    assert world.explain("profiles", "106").holds == ("legal-2027-017",)
    invoice = world.keys("invoices", account_id=104)[-1]
    assert world.status("invoices", invoice, "com7.billing.account-end") == (
        "blocked by a keep rule"
    )
    kept_until = after_year_end(world.stamp("invoices", invoice, "created"), "P5Y")
    assert (
        world.status("invoices", invoice, "com7.billing.account-end", kept_until - SECOND)
        == "blocked by a keep rule"
    )


def test_people_without_an_account_can_ask_for_deletion(world: DemoWorld) -> None:
    """People without an account (form contacts, subscribers, referred people, applicants) can
    ask for deletion too."""
    policy_says(PACK, ASK)
    for rule, dataset in WITHOUT_ACCOUNT:
        asked = [
            k
            for k in world.keys(dataset)
            if (world.row(dataset, k) or {})["erasure_requested_at"] is not None
        ]
        assert asked, dataset
        when = world.stamp(dataset, asked[0], "erasure_requested")
        world.timeline(dataset, asked[0], rule, start=when, due=when, overdue=plus(when, "P30D"))
        others = [k for k in world.keys(dataset) if k not in asked]
        assert {world.status(dataset, k, rule, plus(NOW, "P10Y")) for k in others} == {
            "clock not started"
        }, dataset
    world.run(rules=tuple(rule for rule, _ in WITHOUT_ACCOUNT))
    for _, dataset in WITHOUT_ACCOUNT:
        for key in world.keys(dataset):
            assert (world.row(dataset, key) or {})["erasure_requested_at"] is None, dataset


def test_childrens_referrals_applications_and_cookies(world: DemoWorld) -> None:
    """A child's referral, job application and cookie data are deleted like the rest."""
    policy_says(PACK, CHILD)
    for rule, dataset in CHILD_RECORDS:
        (key,) = world.keys(dataset, is_child=True)
        flagged = world.stamp(dataset, key, "updated")
        world.timeline(
            dataset, key, rule, start=flagged, due=flagged, overdue=plus(flagged, "P30D")
        )
        grown_up = world.key(dataset, is_child=False)
        assert world.status(dataset, grown_up, rule) == "not covered (where filter)"
    world.run(rules=tuple(rule for rule, _ in CHILD_RECORDS))
    for _, dataset in CHILD_RECORDS:
        assert world.keys(dataset, is_child=True) == [], dataset


def test_a_childs_data_is_deleted(world: DemoWorld) -> None:
    """Data found to come from a child under 16 is deleted."""
    flagged = world.event(110, "flagged_child")
    for rule, dataset in ERASURE_RULES:
        key = world.key(dataset, account_id=110)
        world.timeline(
            dataset, key, rule, start=flagged, due=flagged, overdue=plus(flagged, "P30D")
        )
    form = world.key("contacts", is_child=True)
    assert world.status("contacts", form, "com7.contact-details.child") == "due"
    world.run(rules=(*(rule for rule, _ in ERASURE_RULES), "com7.contact-details.child"))
    for _, dataset in ERASURE_RULES:
        assert world.keys(dataset, account_id=110) == [], dataset
    assert world.row("contacts", form) is None

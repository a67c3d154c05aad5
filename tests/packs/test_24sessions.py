"""24sessions privacy policy (rules/24sessions.yaml), promise by promise, on its demo.

Each test is named after a row of the 24sessions table in rules/README.md and quotes that row's
promise (the README's paraphrase).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import NOW, SECOND, DemoWorld, after_year_end, plus, policy_says

PACK = "24sessions"
ACCOUNT_END = (
    ("24sessions.account-profile.account-end", "profiles"),
    ("24sessions.customer-content.account-end", "documents"),
    ("24sessions.support-data.account-end", "support_tickets"),
    ("24sessions.usage-logs.account-end", "usage_events"),
    ("24sessions.payment-cards.account-end", "payments"),
    ("24sessions.public-posts.account-end", "forum_posts"),
)
ERASURE = (
    *ACCOUNT_END[:-1],
    ("24sessions.public-posts.erasure", "forum_posts"),
    ("24sessions.marketing.erasure", "newsletter_subscriptions"),
)


@pytest.fixture
def world(demo_world: Callable[[str], DemoWorld]) -> DemoWorld:
    return demo_world(PACK)


def _rolling(world: DemoWorld, dataset: str, rule: str, period: str, **where: object) -> None:
    key = world.key(dataset, **where)
    created = world.stamp(dataset, key, "created")
    world.timeline(dataset, key, rule, start=created, due=plus(created, period))


def test_data_is_kept_while_the_account_is_active(world: DemoWorld) -> None:
    """Data is kept while the account is active or as needed to provide the Services."""
    closed = world.event(103, "closed")
    for rule, dataset in ACCOUNT_END:
        active = world.key(dataset, account_id=101)
        assert world.status(dataset, active, rule, plus(NOW, "P10Y")) == "clock not started"
        key = world.key(dataset, account_id=103)
        world.timeline(dataset, key, rule, start=closed, due=closed, overdue=plus(closed, "P1M"))
    invoice = world.key("invoices", account_id=103)
    assert world.status("invoices", invoice, "24sessions.billing.account-end") == (
        "blocked by a keep rule"
    )


def test_data_is_kept_to_meet_legal_obligations(world: DemoWorld) -> None:
    """Data is kept as needed to meet legal obligations."""
    rule = "24sessions.billing.account-end"
    invoice = world.keys("invoices", account_id=112)[0]  # closed three years ago
    kept_until = after_year_end(world.stamp("invoices", invoice, "created"), "P7Y")
    assert world.status("invoices", invoice, rule, kept_until - SECOND) == "blocked by a keep rule"
    assert world.status("invoices", invoice, rule, kept_until) == "due"


def test_data_is_kept_to_resolve_disputes(world: DemoWorld) -> None:
    """Data is kept to resolve disputes and enforce agreements."""
    for rule, dataset in ACCOUNT_END:
        for key in world.keys(dataset, account_id=106):
            assert world.status(dataset, key, rule) == "held", (rule, key)
    world.set_hold("legal-2027-017", active=False)
    assert world.status("profiles", "106", "24sessions.account-profile.account-end") == "overdue"


def test_deletion_on_request_within_a_reasonable_time(world: DemoWorld) -> None:
    """You may ask for deletion; we answer within a reasonable time."""
    requested = world.event(108, "erasure_requested")
    for rule, dataset in ERASURE:
        key = world.key(dataset, account_id=108)
        world.timeline(
            dataset, key, rule, start=requested, due=requested, overdue=plus(requested, "P1M")
        )
        world.acted(dataset, world.key(dataset, account_id=109), rule, NOW, "overdue")
    asked = world.keys("contacts", status="erasure_requested")
    rule = "24sessions.contact-details.erasure"
    assert [world.status("contacts", k, rule) for k in asked] == ["due", "overdue"]
    when = world.stamp("contacts", asked[0], "erasure_requested")
    world.timeline("contacts", asked[0], rule, start=when, due=when, overdue=plus(when, "P1M"))
    world.run()  # every rule: an earlier-due delete rule (rolling logs) may take a record first
    for _, dataset in ERASURE:
        assert world.keys(dataset, account_id=108) == [], dataset
    assert world.keys("contacts", status="erasure_requested") == []


def test_people_without_an_account_ask_by_a_stamp_on_their_own_rows(world: DemoWorld) -> None:
    """You may ask for deletion; we answer within a reasonable time: a request from someone
    with no account is the row's own `record.erasure_requested`, stamped by the intake; a row
    without the stamp is never touched by it, whatever its status says."""
    policy_says(PACK, "You may access, correct, or request deletion of your personal information")
    rule = "24sessions.contact-details.erasure"
    prospect = world.key("contacts", status="prospect")
    assert world.status("contacts", prospect, rule, plus(NOW, "P10Y")) == "clock not started"
    asked = world.key("contacts", status="erasure_requested")
    with world.engine.begin() as connection:  # a status set by hand, with no request recorded
        connection.exec_driver_sql(
            "UPDATE contacts SET erasure_requested_at = NULL WHERE id = ?", (int(asked),)
        )
    assert world.status("contacts", asked, rule, plus(NOW, "P10Y")) == "clock not started"


def test_newsletter_subscribers_without_an_account(world: DemoWorld) -> None:
    """Newsletter subscribers without an account may ask for deletion too."""
    policy_says(PACK, "Registering for membership programs or newsletter subscriptions")
    policy_says(PACK, "You may access, correct, or request deletion of your personal information")
    rule = "24sessions.marketing.subscriber-erasure"
    asked = [
        k
        for k in world.keys("newsletter_subscriptions", account_id=None)
        if (world.row("newsletter_subscriptions", k) or {})["erasure_requested_at"] is not None
    ]
    assert len(asked) == 2
    when = world.stamp("newsletter_subscriptions", asked[0], "erasure_requested")
    world.timeline(
        "newsletter_subscriptions", asked[0], rule, start=when, due=when, overdue=plus(when, "P1M")
    )
    assert [world.status("newsletter_subscriptions", k, rule) for k in asked] == ["due", "overdue"]
    kept = world.key("newsletter_subscriptions", account_id=None, consent=True)
    world.run(rules=(rule,))
    assert all(world.row("newsletter_subscriptions", k) is None for k in asked)
    assert world.row("newsletter_subscriptions", kept) is not None


def test_consent_can_be_withdrawn(world: DemoWorld) -> None:
    """You may withdraw consent."""
    rule = "24sessions.marketing.consent-withdrawn"
    key = world.key("newsletter_subscriptions", account_id=None, consent=False)
    when = world.stamp("newsletter_subscriptions", key, "updated")
    world.timeline(
        "newsletter_subscriptions", key, rule, start=when, due=when, overdue=plus(when, "P14D")
    )
    erased = world.key("newsletter_subscriptions", account_id=108)
    assert world.status("newsletter_subscriptions", erased, rule) == ("superseded by a delete rule")


def test_client_data_users_upload(world: DemoWorld) -> None:
    """Client data Users upload; the User answers to its own customers."""
    rule = "24sessions.customer-content.account-end"
    ended = world.event(104, "terminated")
    key = world.key("documents", account_id=104)
    world.timeline("documents", key, rule, start=ended, due=ended, overdue=plus(ended, "P1M"))


def test_referral_data_serves_one_invitation(world: DemoWorld) -> None:
    """Referral data is stored only to send one invitation and track the referral program."""
    rule = "24sessions.referral-emails.after-invite"
    sent = world.keys("referrals", status="sent")
    when = world.stamp("referrals", sent[-1], "updated")
    world.timeline("referrals", sent[-1], rule, start=when, due=when, overdue=plus(when, "P1D"))
    pending = world.key("referrals", status="pending")
    assert world.status("referrals", pending, rule) == "not covered (where filter)"
    world.run(rules=(rule, "24sessions.referral-emails.tracking-window"))
    for key in world.keys("referrals", status="sent"):
        record = world.row("referrals", key)
        assert record is not None
        assert record["name"] == "[redacted]" and "@" not in record["email"]
    for key in world.keys("referrals"):
        assert plus(world.stamp("referrals", key, "created"), "P90D") > NOW


def test_referred_friend_may_ask_for_removal(world: DemoWorld) -> None:
    """The referred friend may ask for removal."""
    policy_says(
        PACK,
        "Your friend may contact us at support@24sessions.com to request that we remove this "
        "information from our database.",
    )
    rule = "24sessions.referral-emails.removal-request"
    asked = world.keys("referrals", status="erasure_requested")
    when = world.stamp("referrals", asked[0], "erasure_requested")
    world.timeline("referrals", asked[0], rule, start=when, due=when, overdue=plus(when, "P1M"))


def test_promotional_emails_can_be_unsubscribed_from(world: DemoWorld) -> None:
    """Promotional e-mails can be unsubscribed from."""
    rule = "24sessions.marketing.consent-withdrawn"
    keys = world.keys("newsletter_subscriptions", account_id=None, consent=False)
    world.run(rules=(rule,))
    for key in keys:
        record = world.row("newsletter_subscriptions", key)
        assert record is not None
        assert record["name"] == "[redacted]" and record["phone"] is None
        assert "@" not in record["email"]


def test_logged_ips_and_clickstream_for_trends(world: DemoWorld) -> None:
    """IP, browser, ISP, pages, clickstream gathered to analyze trends in aggregate."""
    world.run(rules=("24sessions.access-logs.anonymize", "24sessions.access-logs.expiry"))
    for key in world.keys("access_logs"):
        record = world.row("access_logs", key)
        assert record is not None
        created = world.stamp("access_logs", key, "created")
        assert plus(created, "P13M") > NOW
        if plus(created, "P30D") <= NOW:
            assert record["ip"].endswith(".0") and record["user_agent"] == "[redacted]"


def test_product_usage_information(world: DemoWorld) -> None:
    """Product usage information sent back by the Services."""
    _rolling(world, "usage_events", "24sessions.usage-logs.rolling", "P13M", account_id=101)


def test_cookies_and_tracking_technologies(world: DemoWorld) -> None:
    """Cookies and tracking technologies."""
    _rolling(world, "analytics_events", "24sessions.cookies-analytics.expiry", "P13M")


def test_device_data_goes_with_the_account(world: DemoWorld) -> None:
    """Device type, OS, device identifier; push notifications (switched off on the device)."""
    world.run()  # every rule: a record an earlier-due delete rule (rolling logs) takes goes too
    for account in (103, 108, 109):
        assert world.row("profiles", str(account)) is None
        assert world.keys("usage_events", account_id=account) == []
    assert world.keys("usage_events", account_id=101)


def test_location_only_picks_the_data_centre(world: DemoWorld) -> None:
    """Location used only to pick the data centre; opt-out."""
    rule = "24sessions.access-logs.anonymize"
    key = world.keys("access_logs")[-1]
    created = world.stamp("access_logs", key, "created")
    world.timeline("access_logs", key, rule, start=created, due=plus(created, "P30D"))


def test_card_numbers_collected_for_billing_are_masked(world: DemoWorld) -> None:
    """Card numbers are part of the data collected for billing."""
    rule = "24sessions.payment-cards.mask"
    recent = world.keys("payments", account_id=101)[0]
    created = world.stamp("payments", recent, "created")
    world.timeline(
        "payments", recent, rule, start=created, due=created, overdue=plus(created, "P1D")
    )
    world.run(rules=(rule, "24sessions.payment-cards.account-end"))
    for key in world.keys("payments"):
        record = world.row("payments", key)
        assert record is not None
        if world.explain("payments", key).holds:
            continue
        assert re.fullmatch(r"\*{12}\d{4}", record["card_number"]), record


def test_recruitment_inquiries(world: DemoWorld) -> None:
    """Recruitment inquiries."""
    for consent, rule, period in (
        (False, "24sessions.job-applications.no-consent", "P28D"),
        (True, "24sessions.job-applications.talent-pool", "P1Y"),
    ):
        for key in world.keys("job_applications", status="rejected", consent=consent):
            decided = world.stamp("job_applications", key, "updated")
            world.timeline("job_applications", key, rule, start=decided, due=plus(decided, period))
    hired = world.key("job_applications", status="hired")
    rule = "24sessions.job-applications.no-consent"
    assert world.status("job_applications", hired, rule) == "not covered (where filter)"


def test_seminar_and_webinar_registrations(world: DemoWorld) -> None:
    """Seminar/webinar registrations, surveys, newsletters, forms."""
    key = world.key("contacts", status="prospect")
    last = world.stamp("contacts", key, "last_used")
    world.timeline(
        "contacts", key, "24sessions.contact-details.inactive", start=last, due=plus(last, "P3Y")
    )


def test_sweepstakes_contests_promotions(world: DemoWorld) -> None:
    """Sweepstakes, contests, promotions."""
    policy_says(
        PACK,
        "To provide opt-in contests, sweepstakes or other marketing or promotional activities on "
        "the 24sessions.com website or affiliate websites. Personal Information may be collected "
        "to administer those programs.",
    )
    rule = "24sessions.contact-details.promotion-ended"
    running, *ended = world.keys("contacts", purpose="promotion")
    assert (world.row("contacts", running) or {})["promotion_ended_at"] is None
    assert world.status("contacts", running, rule, plus(NOW, "P10Y")) == "clock not started"
    assert len(ended) == 2
    for key in ended:  # one month after the promotion's end, however long ago the entry was
        end = world.stamp("contacts", key, "promotion_ended")
        world.timeline("contacts", key, rule, start=end, due=plus(end, "P1M"))


def test_discussion_groups_and_forums(world: DemoWorld) -> None:
    """Discussion groups and forums."""
    rule = "24sessions.public-posts.account-end"
    posts = world.keys("forum_posts", account_id=103)
    world.run(rules=(rule,))
    for key in posts:
        record = world.row("forum_posts", key)
        assert record is not None, "the post stays visible"
        assert record["name"] == "[redacted]" and record["email"] is None
    active = world.row("forum_posts", world.key("forum_posts", account_id=101))
    assert active is not None and active["name"] != "[redacted]"


def test_forum_posts_are_deleted_when_their_author_asks(world: DemoWorld) -> None:
    """Forum posts are deleted, not pseudonymized, when their author asks for deletion."""
    policy_says(PACK, "You may access, correct, or request deletion of your personal information")
    rule = "24sessions.public-posts.erasure"
    posts = world.keys("forum_posts", account_id=109)
    assert posts and {world.status("forum_posts", k, rule) for k in posts} == {"overdue"}
    closing = "24sessions.public-posts.account-end"
    assert world.status("forum_posts", posts[0], closing) == "clock not started"
    world.run(rules=(rule, closing))
    assert world.keys("forum_posts", account_id=109) == [], "title and text go with the author"
    assert world.keys("forum_posts", account_id=103), "a closed account's posts stay"


def test_support_requests(world: DemoWorld) -> None:
    """Support requests."""
    _rolling(world, "support_tickets", "24sessions.support-data.rolling", "P2Y", account_id=101)

"""[24]7 Website and Platform privacy policies (rules/247.yaml), promise by promise, on its demo.

Each test is named after a row of the [24]7 table in rules/README.md and quotes that row's
promise (the README's paraphrase). The `account` subject is the Client; Platform End Users are
reached through their rows' own `erasure_requested` timestamp and `is_child`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import NOW, SECOND, DemoWorld, plus, policy_says

PACK = "247"


@pytest.fixture
def world(demo_world: Callable[[str], DemoWorld]) -> DemoWorld:
    return demo_world(PACK)


def _rolling(world: DemoWorld, dataset: str, rule: str, period: str, **where: object) -> None:
    key = world.key(dataset, **where)
    created = world.stamp(dataset, key, "created")
    world.timeline(dataset, key, rule, start=created, due=plus(created, period))


def _on_request(world: DemoWorld, dataset: str, rule: str, deadline: str, **where: object) -> None:
    """The first matching record is due when its request is recorded, overdue after `deadline`;
    the demo's second, older request is already overdue."""
    keys = world.keys(dataset, **where)
    (clock,) = world.config.rule(rule).after.refs  # record.updated or record.erasure_requested
    when = world.stamp(dataset, keys[0], clock.name)
    world.timeline(dataset, keys[0], rule, start=when, due=when, overdue=plus(when, deadline))
    assert [world.status(dataset, k, rule) for k in keys] == ["due", "overdue"][: len(keys)]


def test_kept_only_as_law_requires_and_while_a_purpose_exists(world: DemoWorld) -> None:
    """Personal information is kept only as local law requires or permits and while there is a
    legitimate business purpose."""
    for dataset in world.config.settings.datasets:
        actions = {rule.action for rule in world.config.rules_for(dataset)}
        assert actions & {"delete", "anonymize"}, f"{dataset} would be kept forever"
    rule = "247.billing.account-end"
    invoice = world.keys("invoices", account_id=105)[0]
    kept_until = plus(world.stamp("invoices", invoice, "created"), "P7Y")
    assert world.status("invoices", invoice, rule, kept_until - SECOND) == "blocked by a keep rule"
    assert world.status("invoices", invoice, rule, kept_until) == "due"


def test_form_data_to_answer_requests(world: DemoWorld) -> None:
    """Form data (name, phone, e-mail, address) to answer requests and send newsletters."""
    key = world.key("contacts", status="prospect")
    last = world.stamp("contacts", key, "last_used")
    world.timeline(
        "contacts", key, "247.contact-details.inactive", start=last, due=plus(last, "P3Y")
    )


def test_no_further_contact_is_respected(world: DemoWorld) -> None:
    """Someone who does not want further contact is respected; unsubscribe."""
    _on_request(
        world,
        "newsletter_subscriptions",
        "247.marketing.opt-out",
        "P10D",
        account_id=None,
        consent=False,
    )
    _on_request(
        world, "contacts", "247.contact-details.erasure", "P30D", status="erasure_requested"
    )


def test_contact_continues_during_the_business_relationship(world: DemoWorld) -> None:
    """Contact continues while there is a business relationship."""
    rule = "247.account-profile.account-end"
    assert world.status("profiles", "101", rule, plus(NOW, "P10Y")) == "clock not started"
    closed = world.event(103, "closed")
    assert world.status("profiles", "103", rule, closed) == "due"


def test_chat_sessions_with_website_visitors(world: DemoWorld) -> None:
    """Chat sessions with website visitors."""
    _rolling(world, "chat_transcripts", "247.chat-transcripts.rolling", "P1Y", account_id=101)


def test_ip_addresses_are_not_linked_to_identity(world: DemoWorld) -> None:
    """IP addresses are logged but not linked to identity."""
    world.run(rules=("247.access-logs.anonymize", "247.access-logs.expiry"))
    for key in world.keys("access_logs"):
        record = world.row("access_logs", key)
        assert record is not None
        created = world.stamp("access_logs", key, "created")
        assert plus(created, "P13M") > NOW
        if plus(created, "P30D") <= NOW:
            assert record["ip"].endswith(".0") and record["user_agent"] == "[redacted]"


def test_targeting_data(world: DemoWorld) -> None:
    """Targeting Data (IP, visit time, pages) tied to customer identity for ads."""
    _rolling(world, "analytics_events", "247.cookies-analytics.expiry", "P13M")


def test_account_cancellation_answered_in_reasonable_time(world: DemoWorld) -> None:
    """Account cancellation or a request to stop using the data, answered in reasonable time."""
    rule = "247.account-profile.account-end"
    for account, event in ((103, "closed"), (108, "erasure_requested")):
        when = world.event(account, event)
        world.timeline(
            "profiles", str(account), rule, start=when, due=when, overdue=plus(when, "P30D")
        )
    assert world.status("profiles", "109", rule) == "overdue"


def test_job_applications_through_an_employment_partner(world: DemoWorld) -> None:
    """Job applications go through an employment partner."""
    rule = "247.job-applications.after-decision"
    rejected = world.keys("job_applications", status="rejected", consent=True)[0]
    decided = world.stamp("job_applications", rejected, "updated")
    world.timeline(
        "job_applications",
        rejected,
        rule,
        start=decided,
        due=plus(decided, "P1Y"),
        overdue=plus(decided, "P1Y7D"),
    )
    hired = world.key("job_applications", status="hired")
    assert (
        world.status(
            "job_applications",
            hired,
            "247.job-applications.statutory",
            plus(world.stamp("job_applications", hired, "updated"), "P1Y") - SECOND,
        )
        == "keeping"
    )
    assert world.status("job_applications", hired, rule) == "not covered (where filter)"


def test_blog_comments_removed_on_request(world: DemoWorld) -> None:
    """Blog comments: removal on request, sometimes impossible."""
    rule = "247.public-posts.removal-request"
    _on_request(world, "forum_posts", rule, "P30D", status="erasure_requested")
    refused = world.keys("forum_posts", status="erasure_requested")[0]
    world.add_hold(
        id="comment-kept",
        active=True,
        reason="Removal refused: quoted in a ruling",
        datasets=["forum_posts"],
        rules=[rule],
    )
    assert world.status("forum_posts", refused, rule) == "held"


def test_no_childrens_data_on_the_website(world: DemoWorld) -> None:
    """No data knowingly collected from children under 13 (website)."""
    form = world.key("contacts", is_child=True)
    when = world.stamp("contacts", form, "updated")
    world.timeline(
        "contacts",
        form,
        "247.contact-details.child",
        start=when,
        due=when,
        overdue=plus(when, "P30D"),
    )
    flagged = world.event(110, "flagged_child")
    world.timeline(
        "profiles",
        "110",
        "247.account-profile.child",
        start=flagged,
        due=flagged,
        overdue=plus(flagged, "P30D"),
    )
    newsletter = world.key("newsletter_subscriptions", account_id=110)
    assert world.status("newsletter_subscriptions", newsletter, "247.marketing.child") == "due"
    world.run(
        rules=("247.contact-details.child", "247.account-profile.child", "247.marketing.child")
    )
    assert world.row("contacts", form) is None and world.row("profiles", "110") is None
    assert world.keys("newsletter_subscriptions", account_id=110) == []


def test_account_holders_erasure_reaches_the_newsletter(world: DemoWorld) -> None:
    """An account holder's request to stop using the data reaches the newsletter too."""
    policy_says(
        PACK,
        "If you wish to cancel your account or request that we no longer use your information "
        "to provide you services contact us via the information above.",
    )
    rule = "247.marketing.erasure"
    requested = world.event(108, "erasure_requested")
    key = world.key("newsletter_subscriptions", account_id=108)
    world.timeline(
        "newsletter_subscriptions",
        key,
        rule,
        start=requested,
        due=requested,
        overdue=plus(requested, "P30D"),
    )
    late = world.key("newsletter_subscriptions", account_id=109)
    assert world.status("newsletter_subscriptions", late, rule) == "overdue"
    world.run(rules=(rule, "247.marketing.opt-out"))
    assert world.keys("newsletter_subscriptions", account_id=108) == []
    assert world.keys("newsletter_subscriptions", account_id=109) == [], "deleted, not hashed"


def test_childrens_chats_comments_usage_and_cookies(world: DemoWorld) -> None:
    """A child's chat transcripts, blog comments, usage and cookie data are not kept either."""
    policy_says(
        PACK,
        "[24]7 does not knowingly collect personal data from children under the age of 13",
    )
    policy_says(
        PACK,
        "we do not intend to collect Personal Information from anyone we know to be under 13 "
        "years of age.",
    )
    found = (
        ("247.chat-transcripts.child", "chat_transcripts"),
        ("247.public-posts.child", "forum_posts"),
        ("247.cookies-analytics.child", "analytics_events"),
    )
    for rule, dataset in found:
        (key,) = world.keys(dataset, is_child=True)
        when = world.stamp(dataset, key, "updated")
        world.timeline(dataset, key, rule, start=when, due=when, overdue=plus(when, "P30D"))
    rule = "247.usage-logs.child"
    flagged = world.event(110, "flagged_child")
    usage = world.keys("usage_events", account_id=110)
    assert usage
    world.timeline(
        "usage_events", usage[0], rule, start=flagged, due=flagged, overdue=plus(flagged, "P30D")
    )
    world.run(rules=(rule, *(r for r, _ in found)))
    assert world.keys("usage_events", account_id=110) == []
    for _, dataset in found:
        assert world.keys(dataset, is_child=True) == [], dataset
    assert world.keys("chat_transcripts", account_id=101), "the Client's other chats stay"


def test_interaction_data_for_trends(world: DemoWorld) -> None:
    """Interaction Data (referrer, IP, browser, time, pages) for trends."""
    key = world.keys("usage_events", account_id=102)[-1]
    created = world.stamp("usage_events", key, "created")
    world.timeline(
        "usage_events", key, "247.usage-logs.anonymize", start=created, due=plus(created, "P30D")
    )
    _rolling(world, "usage_events", "247.usage-logs.rolling", "P13M", account_id=101)


def test_end_user_data_collected_for_a_client(world: DemoWorld) -> None:
    """End User data collected at the Client's direction."""
    ended = world.event(104, "terminated")
    for rule, dataset in (
        ("247.customer-content.client-terminated", "documents"),
        ("247.chat-transcripts.client-terminated", "chat_transcripts"),
    ):
        key = world.key(dataset, account_id=104)
        world.timeline(
            dataset, key, rule, start=ended, due=plus(ended, "P30D"), overdue=plus(ended, "P90D")
        )
    _rolling(world, "chat_transcripts", "247.chat-transcripts.rolling", "P1Y", account_id=102)


def test_client_contact_billing_and_identifiers(world: DemoWorld) -> None:
    """Client contact, billing and identifiers."""
    world.run(rules=("247.account-profile.account-end", "247.billing.account-end"))
    assert world.row("profiles", "105") is None
    assert world.keys("invoices", account_id=105), "invoices wait for the statutory period"
    assert world.keys("invoices", account_id=111) == [], "ten years on, they go too"


def test_a_client_may_deactivate_its_account(world: DemoWorld) -> None:
    """A Client may deactivate its account instead of receiving service notices."""
    closed = world.event(103, "closed")
    assert (
        world.status(
            "profiles", "103", "247.account-profile.account-end", plus(closed, "P30D") - SECOND
        )
        == "due"
    )
    assert world.status("profiles", "101", "247.account-profile.account-end") == (
        "clock not started"
    )


def test_card_numbers_are_not_persisted(world: DemoWorld) -> None:
    """Card numbers are kept from being persisted."""
    rule = "247.payment-cards.not-persisted"
    key = world.keys("payments", account_id=101)[0]
    created = world.stamp("payments", key, "created")
    world.timeline("payments", key, rule, start=created, due=created, overdue=plus(created, "P1D"))
    world.run(rules=(rule,))
    assert set(world.keys("payments")) == set(world.keys("payments", account_id=106)), (
        "only the payments under the legal hold are left"
    )


def test_end_user_requests_done_within_30_days(world: DemoWorld) -> None:
    """End User deletion/deactivation requests, relayed by the Client, done within 30 days."""
    policy_says(
        PACK,
        "[24]7 will make reasonable efforts to incorporate such changes, or respond to requests "
        "for access, in the [24]7 Platform within 30 days.",
    )
    _on_request(
        world,
        "documents",
        "247.customer-content.end-user-request",
        "P30D",
        status="erasure_requested",
    )
    _on_request(
        world,
        "chat_transcripts",
        "247.chat-transcripts.end-user-request",
        "P30D",
        status="erasure_requested",
    )


def test_no_childrens_data_on_the_platform(world: DemoWorld) -> None:
    """No data knowingly collected from children under 13 (Platform)."""
    rule = "247.customer-content.child"
    key = world.key("documents", is_child=True)
    when = world.stamp("documents", key, "updated")
    world.timeline("documents", key, rule, start=when, due=when, overdue=plus(when, "P30D"))
    world.run(rules=(rule,))
    assert world.row("documents", key) is None
    assert world.keys("documents", account_id=101), "the Client's other records stay"


def test_platform_cookies_on_client_sites(world: DemoWorld) -> None:
    """Platform cookies on Clients' sites."""
    rule = "247.cookies-analytics.expiry"
    world.run(rules=(rule,))
    for key in world.keys("analytics_events"):
        assert plus(world.stamp("analytics_events", key, "created"), "P13M") > NOW

"""The data of the embedded demo: tables for every data category, and accounts with a past.

Each company gets one SQLite database with an ``accounts`` table (the subject lifecycle) and one
table per data category its pack uses, with the columns rules/README.md section 3 asks for.
The rows tell the same stories in every company, with timestamps relative to `now` so a plan
always shows something due, held, blocked, overdue and not yet due:

=====  ==========================================================================
 101   active customer for five years (old tickets, logs and backups age out)
 102   active customer since this spring
 103   closed its account 12 days ago
 104   contract ended 75 days ago
 105   contract ended 130 days ago and nothing was deleted: overdue
 106   contract ended 100 days ago, open legal issue: held (active hold)
 107   contract ended 140 days ago, dispute settled: hold released, overdue
 108   asked for erasure 6 days ago
 109   asked for erasure 40 days ago: overdue
 110   found to be a child's account 3 days ago
 111   closed ten years ago; only invoices are left, the bookkeeping period is over
 112   closed three years ago; only invoices are left, still kept by law
 113   contract ended 45 days ago
=====  ==========================================================================

People without an account (prospects, referred friends, applicants, commenters) and logs that
belong to nobody fill the other tables. Everything random comes from a seeded generator, so the
same `now` always gives the same database.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    false,
    insert,
)


@dataclass(frozen=True)
class Account:
    """One subject's lifecycle, in days before `now` (None: has not happened)."""

    id: int
    story: str
    created: int
    closed: int | None = None
    terminated: int | None = None
    erasure_requested: int | None = None
    flagged_child: int | None = None
    last_login: int | None = None
    only_invoices: bool = False


ACCOUNTS: tuple[Account, ...] = (
    Account(101, "active customer for five years", 1900, last_login=1),
    Account(102, "active customer since this spring", 200, last_login=2),
    Account(103, "closed its account 12 days ago", 900, closed=12, last_login=12),
    Account(104, "contract ended 75 days ago", 1500, closed=75, terminated=75),
    Account(105, "contract ended 130 days ago, nothing deleted yet", 1200, 130, 130),
    Account(106, "contract ended 100 days ago, open legal issue (hold)", 1400, 100, 100),
    Account(107, "contract ended 140 days ago, dispute settled (hold released)", 1300, 140, 140),
    Account(108, "asked for erasure 6 days ago", 600, erasure_requested=6, last_login=6),
    Account(109, "asked for erasure 40 days ago", 700, erasure_requested=40, last_login=41),
    Account(110, "found to be a child's account 3 days ago", 60, flagged_child=3, last_login=3),
    Account(111, "closed ten years ago, only invoices left", 4000, 3600, 3600, only_invoices=True),
    Account(
        112, "closed three years ago, only invoices left", 2500, 1100, 1100, only_invoices=True
    ),
    Account(113, "contract ended 45 days ago", 800, closed=45, terminated=45),
)
HELD_ACCOUNT = 106
RELEASED_ACCOUNT = 107

EVENTS = {
    "created": "created_at",
    "last_active": "last_login_at",
    "closed": "closed_at",
    "terminated": "contract_ended_at",
    "erasure_requested": "erasure_requested_at",
    "flagged_child": "flagged_child_at",
}


@dataclass(frozen=True)
class CategorySpec:
    """How the demo stores one data category (README section 3)."""

    table: str
    columns: tuple[str, ...]
    subject: bool = False
    timestamps: tuple[str, ...] = ("created",)
    personal: tuple[str, ...] = ()


_PERSONAL_COLUMNS = {"account": "account_id"}
"""Personal fields stored under another column: ``account`` is the subject link itself, which
a de-identifying rule may null (24SevenOffice usage patterns). Declared only for a pack whose
rules anonymize it: elsewhere the link is the subject, not a personal field."""

_TEXT = {
    "name": 120,
    "email": 255,
    "phone": 40,
    "ip": 45,
    "user_agent": 200,
    "card_number": 25,
    "status": 30,
    "purpose": 30,
}
CATEGORIES: dict[str, CategorySpec] = {
    "account_profile": CategorySpec(
        "profiles", ("name", "email", "phone"), subject=True, personal=("name", "email", "phone")
    ),
    "contact_details": CategorySpec(
        "contacts",
        ("name", "email", "phone", "status", "purpose", "is_child"),
        timestamps=("created", "updated", "last_used", "erasure_requested", "promotion_ended"),
        personal=("name", "email", "phone"),
    ),
    "customer_content": CategorySpec(
        "documents",
        ("title", "status", "is_child"),
        subject=True,
        timestamps=("created", "updated", "erasure_requested"),
    ),
    "accounting": CategorySpec("ledger_entries", ("title", "amount"), subject=True),
    "support_data": CategorySpec(
        "support_tickets", ("title", "name", "email"), subject=True, personal=("name", "email")
    ),
    "chat_transcripts": CategorySpec(
        "chat_transcripts",
        ("title", "name", "status", "is_child"),
        subject=True,
        timestamps=("created", "updated", "erasure_requested"),
        personal=("name",),
    ),
    "billing": CategorySpec("invoices", ("title", "amount"), subject=True),
    "payment_cards": CategorySpec(
        "payments", ("card_number", "amount"), subject=True, personal=("card_number",)
    ),
    "usage_logs": CategorySpec(
        "usage_events",
        ("title", "ip", "user_agent"),
        subject=True,
        personal=("ip", "user_agent", "account"),
    ),
    "access_logs": CategorySpec(
        "access_logs",
        ("title", "ip", "user_agent", "email"),
        personal=("ip", "user_agent", "email"),
    ),
    "security_logs": CategorySpec("security_events", ("title", "ip"), personal=("ip",)),
    "cookies_analytics": CategorySpec(
        "analytics_events",
        ("title", "ip", "user_agent", "consent", "is_child"),
        timestamps=("created", "updated"),
        personal=("ip", "user_agent"),
    ),
    "marketing": CategorySpec(
        "newsletter_subscriptions",
        ("name", "email", "phone", "consent"),
        subject=True,
        timestamps=("created", "updated", "erasure_requested"),
        personal=("name", "email", "phone"),
    ),
    "referral_emails": CategorySpec(
        "referrals",
        ("name", "email", "status", "is_child"),
        timestamps=("created", "updated", "erasure_requested"),
        personal=("name", "email"),
    ),
    "public_posts": CategorySpec(
        "forum_posts",
        ("title", "name", "email", "status", "consent", "is_child"),
        subject=True,
        timestamps=("created", "updated", "erasure_requested"),
        personal=("name", "email"),
    ),
    "job_applications": CategorySpec(
        "job_applications",
        ("title", "name", "email", "status", "consent", "is_child"),
        timestamps=("created", "updated", "erasure_requested"),
        personal=("name", "email"),
    ),
    "backups": CategorySpec("backups", ("title",)),
}
TIMESTAMP_COLUMNS = {
    "created": "created_at",
    "updated": "updated_at",
    "last_used": "last_used_at",
    "erasure_requested": "erasure_requested_at",
    "promotion_ended": "promotion_ended_at",
}
"""Record timestamps. ``updated`` and ``last_used`` default to the row's creation; the others
(an erasure request from someone without an account, a promotion's end) are NULL until they
happen."""
_FROM_CREATION = ("updated", "last_used")


def define_tables(categories: Iterable[str]) -> tuple[MetaData, dict[str, Table]]:
    """The accounts table and one table per category, by category."""
    metadata = MetaData()
    Table(
        "accounts",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("organisation", String(120)),
        *(Column(column, DateTime) for column in EVENTS.values()),
    )
    tables = {}
    for category in categories:
        spec = CATEGORIES[category]
        columns: list[Column[Any]] = [Column("id", Integer, primary_key=True, autoincrement=False)]
        if spec.subject:
            columns.append(Column("account_id", Integer, ForeignKey("accounts.id"), index=True))
        for name in spec.columns:
            if name in ("is_child", "consent"):
                columns.append(Column(name, Boolean, nullable=False, server_default=false()))
            elif name == "amount":
                columns.append(Column(name, Numeric(12, 2)))
            else:
                columns.append(Column(name, String(_TEXT.get(name, 200))))
        for stamp in spec.timestamps:
            columns.append(Column(TIMESTAMP_COLUMNS[stamp], DateTime, index=True))
        tables[category] = Table(spec.table, metadata, *columns)
    return metadata, tables


def dataset_config(category: str, anonymized: Iterable[str] = ()) -> dict[str, Any]:
    """The `datasets:` entry for one category's table; `anonymized` names the personal fields
    the pack's rules anonymize there (a subject link is declared personal only then)."""
    spec = CATEGORIES[category]
    entry: dict[str, Any] = {"store": "app", "table": spec.table, "key": "id", "category": category}
    if spec.subject:
        entry["subject"] = {"type": "account", "column": "account_id"}
    entry["timestamps"] = {stamp: TIMESTAMP_COLUMNS[stamp] for stamp in spec.timestamps}
    if spec.personal:
        wanted = set(anonymized)
        entry["personal"] = {
            field: _PERSONAL_COLUMNS.get(field, field)
            for field in spec.personal
            if field not in _PERSONAL_COLUMNS or field in wanted
        }
    return entry


def subject_config() -> dict[str, Any]:
    return {"store": "app", "table": "accounts", "key": "id", "events": dict(EVENTS)}


# -- rows ----------------------------------------------------------------------------------------

_FIRST = ("Ada", "Bjørn", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana", "Ivo", "Juni", "Kari")
_LAST = ("Berg", "Okafor", "Lund", "Silva", "Haugen", "Novak", "Dahl", "Moreau", "Strand", "Ito")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14) Chrome/129.0 Mobile",
)
_ORGS = (
    "Fjordline Bakeri AS", "Nordlys Regnskap", "Kystvakt Marine", "Helix Dental", "Solberg Tre",
    "Aurora Yoga", "Polar Logistikk", "Vestby Elektro", "Bryggen Café", "Lofoten Fisk",
    "Tindra Design", "Granitt Bygg", "Havbris Hotell",
)  # fmt: skip


class Rows:
    """Rows for every table of one company, with ids and timestamps relative to `now`."""

    def __init__(self, categories: Iterable[str], now: dt.datetime, seed: int) -> None:
        self.categories = set(categories)
        self.now = now.astimezone(dt.UTC).replace(tzinfo=None)
        self.rng = random.Random(seed)
        self.rows: dict[str, list[dict[str, Any]]] = {c: [] for c in self.categories}
        self.accounts: list[dict[str, Any]] = []

    def ago(self, days: float | None) -> dt.datetime | None:
        """The naive UTC moment `days` before now, to the second."""
        if days is None:
            return None
        return (self.now - dt.timedelta(days=days)).replace(microsecond=0)

    def add(self, category: str, **values: Any) -> int | None:
        """One row; its timestamps are days ago. None if not in this pack."""
        if category not in self.categories:
            return None
        rows = self.rows[category]
        row_id = values.pop("id", None) or len(rows) + 1
        spec = CATEGORIES[category]
        row: dict[str, Any] = {"id": row_id}
        if spec.subject:
            row["account_id"] = values.pop("account", None)
        for column in spec.columns:
            default: Any = False if column in ("is_child", "consent") else None
            row[column] = values.pop(column, default)
        created = values.pop("created")
        stamps = {
            stamp: values.pop(stamp, None) for stamp in TIMESTAMP_COLUMNS if stamp != "created"
        }
        stamps["created"] = created
        for stamp in spec.timestamps:
            days = stamps[stamp]
            if days is None and stamp in _FROM_CREATION:
                days = created
            row[TIMESTAMP_COLUMNS[stamp]] = self.ago(days)
        if values:
            raise TypeError(f"unknown columns for {category}: {sorted(values)}")
        rows.append(row)
        return int(row_id)

    def person(self) -> tuple[str, str, str]:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        email = f"{first.lower().replace('ø', 'o')}.{last.lower()}{self.rng.randint(1, 99)}"
        digits = [self.rng.randint(low, high) for low, high in ((400, 999), (10, 99), (100, 999))]
        phone = "+47 " + " ".join(str(d) for d in digits)
        return f"{first} {last}", f"{email}@example.com", phone

    def ip(self) -> str:
        parts = [self.rng.choice((81, 84, 88, 193)), *(self.rng.randint(0, 255) for _ in "ab")]
        return ".".join(str(p) for p in (*parts, self.rng.randint(1, 254)))

    def card(self) -> str:
        return "4" + "".join(str(self.rng.randint(0, 9)) for _ in range(15))

    def spread(self, count: int, oldest: float, newest: float = 0.1) -> list[float]:
        """`count` ages in days between `newest` and `oldest`, oldest first."""
        return sorted((self.rng.uniform(newest, oldest) for _ in range(count)), reverse=True)


def build_rows(categories: Iterable[str], now: dt.datetime, seed: int) -> Rows:
    """Every row of one company's demo database."""
    rows = Rows(categories, now, seed)
    for index, account in enumerate(ACCOUNTS):
        rows.accounts.append(
            {
                "id": account.id,
                "organisation": _ORGS[index % len(_ORGS)],
                "created_at": rows.ago(account.created),
                "last_login_at": rows.ago(account.last_login),
                "closed_at": rows.ago(account.closed),
                "contract_ended_at": rows.ago(account.terminated),
                "erasure_requested_at": rows.ago(account.erasure_requested),
                "flagged_child_at": rows.ago(account.flagged_child),
            }
        )
        _account_rows(rows, account)
    for build in _WORLD:
        build(rows)
    return rows


def _account_rows(rows: Rows, a: Account) -> None:
    """What one account owns: profile, documents, ledger, tickets, invoices, cards, logs."""
    ends = (a.closed, a.terminated, a.erasure_requested, a.flagged_child)
    end: float = min((d for d in ends if d is not None), default=0.5)
    for invoiced in range(a.created - 30, int(end), -400)[:6]:
        title = f"Invoice {a.id}-{invoiced}"
        rows.add("billing", account=a.id, title=title, amount=490, created=invoiced)
    if a.only_invoices:
        return
    name, email, phone = rows.person()
    rows.add(
        "account_profile",
        id=a.id,
        account=a.id,
        name=name,
        email=email,
        phone=phone,
        created=a.created,
    )
    life = a.created - end
    age: float
    for title, age in (("Price list", a.created - 10), ("Annual report", end + life / 3)):
        rows.add("customer_content", account=a.id, title=title, status="active", created=age)
        rows.add("accounting", account=a.id, title=f"Ledger: {title}", amount=1250, created=age)
        rows.add(
            "chat_transcripts",
            account=a.id,
            title=f"Chat about {title}",
            name=name,
            status="closed",
            created=age,
        )
    for age in (min(a.created - 5, 800.0), end + 3):
        rows.add(
            "support_data", account=a.id, title="Login problem", name=name, email=email, created=age
        )
    for age in (end + 0.1, end + 3, min(end + 300, a.created), min(end + 600, a.created)):
        card = rows.card()
        masked = "*" * 12 + card[-4:]  # masked at the time by an earlier run
        number = masked if age > 100 else card
        rows.add("payment_cards", account=a.id, card_number=number, amount=490, created=age)
    for age in rows.spread(6, min(a.created, 500), end + 0.2):
        rows.add(
            "usage_logs",
            account=a.id,
            title="opened dashboard",
            ip=rows.ip(),
            user_agent=rows.rng.choice(_AGENTS),
            created=age,
        )
    consent = a.erasure_requested is None
    rows.add(
        "marketing",
        account=a.id,
        name=name,
        email=email,
        phone=phone,
        consent=consent,
        created=a.created,
        updated=a.erasure_requested or a.created,
    )
    rows.add(
        "public_posts",
        account=a.id,
        title="Tips for month-end closing",
        name=name,
        email=email,
        status="published",
        consent=True,
        created=min(a.created, 300),
        updated=min(a.created, 300),
    )


def _visitors(rows: Rows) -> None:
    """Prospects, form contacts, newsletter-only subscribers: people without an account."""
    for age in (20, 200, 700, 1000, 1200, 1500):
        name, email, phone = rows.person()
        rows.add(
            "contact_details",
            name=name,
            email=email,
            phone=phone,
            status="prospect",
            created=age + 30,
            last_used=age,
        )
    # promotion entries: one in a promotion still running, one whose promotion ended 200 days
    # ago (a third, ended 10 days ago, is in _requests_and_children)
    for age, ended in ((30, None), (250, 200)):
        name, email, phone = rows.person()
        rows.add(
            "contact_details",
            name=name,
            email=email,
            status="entered",
            purpose="promotion",
            created=age,
            last_used=age,
            promotion_ended=ended,
        )
    for age in (5, 45):
        name, email, phone = rows.person()
        rows.add(
            "contact_details",
            name=name,
            email=email,
            status="erasure_requested",
            created=age + 100,
            updated=age,
            last_used=age + 100,
            erasure_requested=age,
        )
    name, email, phone = rows.person()
    rows.add(
        "contact_details",
        name=name,
        email=email,
        is_child=True,
        status="subscribed",
        created=20,
        updated=2,
        last_used=20,
    )
    for age, consent in ((3, False), (25, False), (90, True)):
        name, email, phone = rows.person()
        rows.add(
            "marketing",
            name=name,
            email=email,
            phone=phone,
            consent=consent,
            created=age + 200,
            updated=age,
        )


def _end_users(rows: Rows) -> None:
    """Platform End Users and commenters who asked for deletion, and a child's record."""
    for age in (10, 45):
        rows.add(
            "customer_content",
            account=101,
            title="End User profile",
            status="erasure_requested",
            created=age + 60,
            updated=age,
            erasure_requested=age,
        )
        rows.add(
            "chat_transcripts",
            account=101,
            title="End User chat",
            name=rows.person()[0],
            status="erasure_requested",
            created=age + 60,
            updated=age,
            erasure_requested=age,
        )
        name, email, _ = rows.person()
        rows.add(
            "public_posts",
            title="Blog comment",
            name=name,
            email=email,
            status="erasure_requested",
            consent=True,
            created=age + 90,
            updated=age,
            erasure_requested=age,
        )
    rows.add(
        "customer_content",
        account=101,
        title="End User profile (age 12)",
        status="active",
        is_child=True,
        created=30,
        updated=2,
    )
    name, email, _ = rows.person()
    rows.add(
        "public_posts",
        title="Customer testimonial",
        name=name,
        email=email,
        status="published",
        consent=False,
        created=400,
        updated=10,
    )


def _logs(rows: Rows) -> None:
    """Logs that belong to nobody: web access, security events, analytics, backups."""
    for age in rows.spread(24, 450):
        rows.add(
            "access_logs",
            title="GET /pricing",
            ip=rows.ip(),
            user_agent=rows.rng.choice(_AGENTS),
            email=rows.person()[1] if rows.rng.random() < 0.3 else None,
            created=age,
        )
    for age in rows.spread(16, 500):
        rows.add("security_logs", title="failed login", ip=rows.ip(), created=age)
    for age in rows.spread(20, 450):
        rows.add(
            "cookies_analytics",
            title="page view",
            ip=rows.ip(),
            user_agent=rows.rng.choice(_AGENTS),
            consent=True,
            created=age,
        )
    for age in (5, 40):
        rows.add(
            "cookies_analytics",
            title="page view (consent revoked)",
            ip=rows.ip(),
            user_agent=rows.rng.choice(_AGENTS),
            consent=False,
            created=age + 30,
            updated=age,
        )
    for age in range(2, 140, 7):
        rows.add("backups", title=f"nightly backup, {age} days old", created=age)


def _recruiting(rows: Rows) -> None:
    """Referred friends and job applicants."""
    for status, created, updated, child in (
        ("pending", 2, 2, False), ("sent", 3, 3, False), ("sent", 0.5, 0.5, False),
        ("sent", 150, 149, False), ("erasure_requested", 20, 4, False),
        ("erasure_requested", 60, 40, False), ("pending", 120, 120, False),
        ("pending", 10, 2, True),
    ):  # fmt: skip
        name, email, _ = rows.person()
        rows.add(
            "referral_emails",
            name=name,
            email=email,
            status=status,
            is_child=child,
            created=created,
            updated=updated,
            erasure_requested=updated if status == "erasure_requested" else None,
        )
    for status, consent, updated, child, asked in (
        ("open", False, 5, False, None), ("hired", False, 400, False, None),
        ("rejected", False, 20, False, None), ("rejected", False, 40, False, None),
        ("rejected", True, 200, False, None), ("rejected", True, 420, False, None),
        ("withdrawn", False, 250, False, None), ("open", False, 15, False, 6),
        ("open", False, 3, True, None),
    ):  # fmt: skip
        name, email, _ = rows.person()
        rows.add(
            "job_applications",
            title="Accountant",
            name=name,
            email=email,
            status=status,
            consent=consent,
            is_child=child,
            created=updated + 30,
            updated=updated,
            erasure_requested=asked,
        )


def _requests_and_children(rows: Rows) -> None:
    """Added last so the rows above keep their generated values: a promotion that ended 10
    days ago, newsletter-only subscribers who asked for erasure, and a child's chat, blog
    comment and page view."""
    name, email, _ = rows.person()
    rows.add(
        "contact_details",
        name=name,
        email=email,
        status="entered",
        purpose="promotion",
        created=60,
        last_used=60,
        promotion_ended=10,
    )
    for asked in (8, 50):  # newsletter-only subscribers who asked for erasure
        name, email, _ = rows.person()
        rows.add(
            "marketing",
            name=name,
            email=email,
            consent=True,
            created=300,
            updated=300,
            erasure_requested=asked,
        )
    rows.add(
        "chat_transcripts",
        account=101,
        title="End User chat (age 12)",
        name=rows.person()[0],
        status="closed",
        is_child=True,
        created=30,
        updated=2,
    )
    name, email, _ = rows.person()
    rows.add(
        "public_posts",
        title="Blog comment (age 12)",
        name=name,
        email=email,
        status="published",
        consent=True,
        is_child=True,
        created=20,
        updated=2,
    )
    rows.add(
        "cookies_analytics",
        title="page view (a child's)",
        ip=rows.ip(),
        user_agent=rows.rng.choice(_AGENTS),
        consent=True,
        is_child=True,
        created=20,
        updated=2,
    )


_WORLD: tuple[Callable[[Rows], None], ...] = (
    _visitors,
    _end_users,
    _logs,
    _recruiting,
    _requests_and_children,
)


def write_rows(engine: Engine, tables: dict[str, Table], rows: Rows) -> None:
    """Insert every row in one transaction (accounts first, for the foreign keys)."""
    metadata = next(iter(tables.values())).metadata if tables else None
    with engine.begin() as connection:
        if metadata is not None:
            connection.execute(insert(metadata.tables["accounts"]), rows.accounts)
        for category, table in tables.items():
            if rows.rows[category]:
                connection.execute(insert(table), rows.rows[category])

"""Configuration errors: every mistake names the file, the line and the field, and nothing runs.

Each test writes its YAML by hand so the line numbers it asserts can be read off the text. The
shared files (``config.yaml``, ``rules/pack.yaml``, ``holds.yaml``) are valid until a test
overwrites one of them; line numbers of the shared config are listed next to ``CONFIG``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.errors import ConfigError, ConfigErrors

# Lines:  1 state_db · 2 rules · 3 holds · 4 hmac_key · 6 stores.app · 8 subjects.account
#         (12 events) · 14 datasets.tickets (15 store, 16 table, 17 key, 18 category, 19 subject,
#         20 timestamps, 21 personal) · 22 datasets.audit_trail (no subject).
CONFIG = """
state_db: sqlite:///state.db
rules: [rules/]
holds: holds.yaml
hmac_key: not-a-real-key
stores:
  app: {kind: sql, url: "sqlite:///app.db"}
subjects:
  account:
    store: app
    table: accounts
    key: id
    events: {created: created_at, closed: closed_at}
datasets:
  tickets:
    store: app
    table: tickets
    key: id
    category: support_data
    subject: {type: account, column: account_id}
    timestamps: {created: created_at}
    personal: {email: email, ip: ip}
  audit_trail:
    store: app
    table: audit_trail
    key: id
    category: audit_logs
    timestamps: {created: created_at}
"""

PACK = """
policy: {name: Test policy}
rules:
  - id: tickets.delete
    applies_to: {dataset: tickets}
    after: record.created
    retain: P30D
    action: delete
"""

HOLDS = """
holds:
  - id: case-1
    subjects: {account: [4411]}
"""

ACCEPTED_DURATIONS = ("P30D", "30 days")


class Files:
    """A temporary directory holding one configuration, written by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        """Write `text` (dedented, first line = line 1) to `name` under the root."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def path(self, name: str) -> str:
        return str(self.root / name)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def errors(self) -> list[ConfigError]:
        """The errors load_config reports, in order."""
        with pytest.raises(ConfigError) as info:
            load_config(self.config)
        error = info.value
        return list(error.errors) if isinstance(error, ConfigErrors) else [error]

    def error(self) -> ConfigError:
        """The one error load_config reports."""
        errors = self.errors()
        assert len(errors) == 1, [str(e) for e in errors]
        return errors[0]


def where(error: ConfigError) -> tuple[str | None, int | None, str | None]:
    return error.file, error.line, error.field


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RETENTION_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("RETENTION_"):
            monkeypatch.delenv(name)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    files = Files(tmp_path)
    files.write("config.yaml", CONFIG)
    files.write("rules/pack.yaml", PACK)
    files.write("holds.yaml", HOLDS)
    return files


def test_shared_files_are_valid(files: Files) -> None:
    """The baseline every other test breaks in one place loads cleanly."""
    config = load_config(files.config)
    assert [rule.id for rule in config.rules] == ["tickets.delete"]
    assert [hold.id for hold in config.load_holds().holds] == ["case-1"]


# --- YAML itself -------------------------------------------------------------------------------


def test_invalid_yaml_names_the_line_and_where_the_construct_began(files: Files) -> None:
    """A YAML syntax error names the line it was found on and the line its construct began."""
    files.write(
        "config.yaml",
        """
        state_db: sqlite:///state.db
        rules: [rules/
        holds: holds.yaml
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 3, None)
    assert error.message == (
        "invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that began on line 2)"
    )


def test_invalid_yaml_in_a_rule_pack(files: Files) -> None:
    """A syntax error in a rule pack names the pack file and the line."""
    files.write(
        "rules/pack.yaml",
        "policy: {name: Test policy}\nrules:\n  - id: tickets.delete\n\tretain: P30D\n",
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 4, None)
    assert "invalid YAML" in error.message
    assert "'\\t'" in error.message


def test_duplicate_yaml_key_names_both_lines(files: Files) -> None:
    """A key given twice is an error at the second one (a silent override would hide a typo)."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app:
            kind: sql
            url: sqlite:///app.db
            kind: sql
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 6, "stores.app.kind")
    assert error.message == "duplicate key 'kind' (first given on line 4)"


def test_a_value_yaml_cannot_read_names_its_line(files: Files) -> None:
    """A date-looking value that is no date (month 13) is a located error, not a traceback."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            review_by: 2027-13-01
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 3, "holds[0].review_by")
    assert "2027-13-01" in error.message
    assert "month must be in 1..12" in error.message


def test_python_tags_are_refused_with_a_line(files: Files) -> None:
    """Only plain YAML is read: a `!!python/...` tag is a located error, never executed."""
    files.write(
        "config.yaml",
        """
        rules: []
        batch_size: !!python/object/apply:os.getpid []
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 2, "batch_size")
    assert "python/object/apply:os.getpid" in error.message


def test_config_must_be_a_mapping(files: Files) -> None:
    """A config file that is a list, not a mapping of settings, is refused at line 1."""
    files.write("config.yaml", "- state_db\n- rules\n")
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 1, None)
    assert "mapping of settings" in error.message


def test_missing_config_file(tmp_path: Path) -> None:
    """A config path that does not exist is named as such."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert where(info.value) == (str(tmp_path / "nope.yaml"), None, None)
    assert info.value.message == "file not found"


# --- settings ----------------------------------------------------------------------------------


def test_unknown_top_level_setting_suggests_the_right_one(files: Files) -> None:
    """A misspelt setting is an unknown field at its line, with the likely intended name."""
    files.write(
        "config.yaml",
        """
        rules: []
        dry_run: true
        batch_sise: 100
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 3, "batch_sise")
    assert error.message == "unknown field (did you mean 'batch_size'?)"


def test_unknown_field_without_a_near_match_lists_the_allowed_ones(files: Files) -> None:
    """An unknown field nothing resembles lists the fields allowed at that place."""
    files.write(
        "config.yaml",
        """
        rules: []
        service:
          host: 0.0.0.0
          tls: true
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 4, "service.tls")
    assert error.message.startswith("unknown field (allowed: host, port")


def test_unknown_field_in_a_dataset(files: Files) -> None:
    """A misspelt dataset field is reported, and so is the required field it failed to give."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: app
            table: tickets
            key: id
            categroy: support_data
        """,
    )
    missing, unknown = sorted(files.errors(), key=lambda e: e.line or 0)
    assert where(missing) == (files.path("config.yaml"), 5, "datasets.tickets.category")
    assert missing.message == "required field is missing"
    assert where(unknown) == (files.path("config.yaml"), 9, "datasets.tickets.categroy")
    assert unknown.message == "unknown field (did you mean 'category'?)"


def test_unknown_field_in_a_store(files: Files) -> None:
    """An unknown field in a store is named with the store's path, not pydantic's union tag."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app:
            kind: sql
            url: sqlite:///app.db
            pool_size: 5
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 6, "stores.app.pool_size")
    assert error.message.startswith("unknown field (allowed: kind, url, connect_timeout")


def test_unknown_field_in_a_subject(files: Files) -> None:
    """An unknown field in a subject type is reported at its line."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        subjects:
          account:
            store: app
            table: accounts
            key: id
            event: {closed: closed_at}
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 9, "subjects.account.event")
    assert error.message == "unknown field (did you mean 'events'?)"


def test_wrong_store_kind(files: Files) -> None:
    """An unknown store kind points at `kind` and lists the kinds there are."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app:
            kind: postgres
            url: postgresql://db/app
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 4, "stores.app.kind")
    assert error.message == "unknown kind 'postgres' (use sql, s3, filesystem, delta or iceberg)"


def test_store_without_kind(files: Files) -> None:
    """A store that does not say its kind is told to, at the store's line."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {url: "sqlite:///app.db"}
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 3, "stores.app.kind")
    assert error.message == "required field is missing (use sql, s3, filesystem, delta or iceberg)"


def test_dataset_with_both_table_and_prefix(files: Files) -> None:
    """A dataset located twice is an error at the second location, naming both."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: app
            table: tickets
            prefix: tickets/
            key: id
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 8, "datasets.tickets.prefix")
    assert error.message == (
        "a dataset needs exactly one of table, prefix or glob (this one gives table and prefix)"
    )


def test_dataset_with_no_location(files: Files) -> None:
    """A dataset with neither table, prefix nor glob is an error at the dataset."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: app
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 5, "datasets.tickets")
    assert error.message == "a dataset needs exactly one of table, prefix or glob"


def test_table_dataset_without_key(files: Files) -> None:
    """A table dataset must name its primary key: the error is the missing `key`."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: app
            table: tickets
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 5, "datasets.tickets.key")
    assert error.message == "a table dataset needs a key (its primary key column or columns)"


def test_dataset_key_of_the_wrong_type_is_one_error(files: Files) -> None:
    """A key that is neither a column nor a list of columns is one error, without type tags."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: app
            table: tickets
            key: {column: id}
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 8, "datasets.tickets.key")
    assert "valid string" in error.message
    assert "valid list" in error.message


def test_unknown_store_in_a_dataset(files: Files) -> None:
    """A dataset naming a store that is not declared is an error at its `store`."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          tickets:
            store: ap
            table: tickets
            key: id
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 6, "datasets.tickets.store")
    assert error.message == "unknown store 'ap' (known: app)"


def test_unknown_store_in_a_subject(files: Files) -> None:
    """A subject type naming an undeclared store is an error at its `store`."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        subjects:
          account:
            table: accounts
            key: id
            store: crm
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 8, "subjects.account.store")
    assert error.message == "unknown store 'crm' (known: app)"


def test_unknown_subject_type_in_a_dataset(files: Files) -> None:
    """A dataset belonging to an undeclared subject type is an error at `subject.type`."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        subjects:
          account: {store: app, table: accounts, key: id}
        datasets:
          tickets:
            store: app
            table: tickets
            key: id
            category: support_data
            subject:
              column: customer_id
              type: customer
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 14, "datasets.tickets.subject.type")
    assert error.message == "unknown subject type 'customer' (known: account)"


def test_dataset_on_the_wrong_kind_of_store(files: Files) -> None:
    """A SQL store holds tables: a dataset there located by `prefix` is told to use `table`."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          uploads:
            store: app
            prefix: uploads/
            category: customer_content
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 7, "datasets.uploads.prefix")
    assert error.message == "a dataset on a sql store is located by `table`, not `prefix`"


def test_invalid_dataset_name(files: Files) -> None:
    """A dataset name with spaces is refused at its own line."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app: {kind: sql, url: "sqlite:///app.db"}
        datasets:
          support tickets:
            store: app
            table: tickets
            key: id
            category: support_data
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 5, "datasets.support tickets")
    assert error.message == "'support tickets' is not a valid name (letters, digits, _ . -)"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("rules: []\ntimezone: Europe/Berlinn\n", 2, "timezone"),
        (
            "rules: []\nstores:\n  app: {kind: sql, url: 'sqlite:///a.db'}\n"
            "datasets:\n  t:\n    store: app\n    table: t\n    key: id\n    category: c\n"
            "    timezone: Europe/Berlinn\n",
            10,
            "datasets.t.timezone",
        ),
        (
            "rules: []\nstores:\n  app: {kind: sql, url: 'sqlite:///a.db'}\n"
            "subjects:\n  account:\n    store: app\n    table: accounts\n    key: id\n"
            "    timezone: Europe/Berlinn\n",
            9,
            "subjects.account.timezone",
        ),
    ],
    ids=["settings", "dataset", "subject"],
)
def test_unknown_time_zone(files: Files, text: str, line: int, field: str) -> None:
    """An unknown time zone, wherever given, is an error at its line, with a good example."""
    files.write("config.yaml", text)
    error = files.error()
    assert where(error) == (files.path("config.yaml"), line, field)
    assert (
        error.message == "unknown time zone 'Europe/Berlinn' (use an IANA name like Europe/Berlin)"
    )


def test_bad_cron_in_settings_schedule(files: Files) -> None:
    """The default schedule is checked like a rule's: a bad cron is an error at `schedule`."""
    files.write(
        "config.yaml",
        """
        rules: []
        schedule: "every day at 3"
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 2, "schedule")
    assert "'every day at 3' is not a valid cron expression" in error.message
    assert "0 3 * * *" in error.message


def test_unparsable_database_url(files: Files) -> None:
    """A store URL SQLAlchemy cannot parse is a config error at `url`, without echoing the URL."""
    files.write(
        "config.yaml",
        """
        rules: []
        stores:
          app:
            kind: sql
            url: postgresql+psycopg://retention:hunter2@db:5432x/app
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 5, "stores.app.url")
    assert error.message.startswith("not a database URL: use dialect+driver://")
    assert "hunter2" not in str(error)


def test_limits_out_of_range(files: Files) -> None:
    """A circuit-breaker limit out of range says the bound, at the line of the limit."""
    files.write(
        "config.yaml",
        """
        rules: []
        limits:
          max_actions_per_run: 10
          max_fraction: 1.5
        """,
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 4, "limits.max_fraction")
    assert error.message == "Input should be less than or equal to 1"


def test_audit_keys_choice(files: Files) -> None:
    """A value outside a fixed set of choices lists the choices."""
    files.write("config.yaml", "rules: []\naudit: {keys: sha1}\n")
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 2, "audit.keys")
    assert error.message == "Input should be 'plain', 'hmac' or 'none'"


def test_missing_rule_pack(files: Files) -> None:
    """A rule pack path that does not exist is an error at its entry in `rules:` of the config."""
    files.write(
        "config.yaml",
        CONFIG.replace("rules: [rules/]", "rules:\n  - rules/\n  - packs/acme.yaml"),
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 4, "rules[1]")
    assert error.message == f"rule pack not found: {files.path('packs/acme.yaml')}"


def test_missing_holds_file(files: Files) -> None:
    """A holds file that does not exist is an error at `holds:` in the config."""
    (files.root / "holds.yaml").unlink()
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 3, "holds")
    assert error.message == f"holds file not found: {files.path('holds.yaml')}"


# --- rule packs --------------------------------------------------------------------------------


def write_rule(files: Files, body: str, *, name: str = "rules/pack.yaml") -> None:
    """A pack whose single rule starts on line 3 with `- id: r1`; `body` follows from line 4."""
    text = "policy: {name: Test policy}\nrules:\n  - id: r1\n"
    text += textwrap.indent(textwrap.dedent(body).lstrip("\n"), "    ")
    files.write(name, text)


def test_unknown_field_in_a_rule(files: Files) -> None:
    """A misspelt rule field is an unknown field, and the field it should have been is missing."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retian: P30D
        action: delete
        """,
    )
    missing, unknown = files.errors()
    pack = files.path("rules/pack.yaml")
    assert where(missing) == (pack, 3, "rules[0].retain")
    assert missing.message == "required field is missing"
    assert where(unknown) == (pack, 6, "rules[0].retian")
    assert unknown.message == "unknown field (did you mean 'retain'?)"


def test_unknown_dataset_in_applies_to(files: Files) -> None:
    """A rule for an undeclared dataset is an error at `applies_to.dataset`, listing the known."""
    write_rule(
        files,
        """
        applies_to:
          dataset: tikets
        after: record.created
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].applies_to.dataset")
    assert error.message == "rule r1: unknown dataset 'tikets' (known: audit_trail, tickets)"


def test_unknown_category_in_applies_to(files: Files) -> None:
    """A rule for a category no dataset carries says how to declare or disable it."""
    write_rule(
        files,
        """
        applies_to:
          category: marketing
        after: record.created
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].applies_to.category")
    assert error.message.startswith(
        "rule r1: no dataset carries category 'marketing' (known: audit_logs, support_data)"
    )
    assert "rule_overrides: {r1: {enabled: false}}" in error.message


@pytest.mark.parametrize(
    "applies_to", ["{dataset: tickets, category: support_data}", "{}"], ids=["both", "neither"]
)
def test_applies_to_needs_exactly_one(files: Files, applies_to: str) -> None:
    """`applies_to` with both or neither of dataset and category is an error at `applies_to`."""
    write_rule(
        files,
        f"""
        after: record.created
        retain: P30D
        applies_to: {applies_to}
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 6, "rules[0].applies_to")
    assert error.message == "applies_to needs exactly one of category or dataset"


@pytest.mark.parametrize(
    ("field", "line", "value"),
    [("retain", 6, "thirty days"), ("grace", 7, "P1.5D"), ("within", 8, "-P3M")],
)
def test_bad_duration(files: Files, field: str, line: int, value: str) -> None:
    """A bad retain, grace or within names the field and shows the accepted forms."""
    durations = {"retain": "P30D", "grace": "P0D", "within": "P3M", field: value}
    write_rule(
        files,
        f"""
        applies_to: {{dataset: tickets}}
        after: record.created
        retain: "{durations["retain"]}"
        grace: "{durations["grace"]}"
        within: "{durations["within"]}"
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), line, f"rules[0].{field}")
    assert error.message.startswith(f"invalid duration {value!r}")
    for form in ACCEPTED_DURATIONS:
        assert form in error.message


def test_bad_after_syntax(files: Files) -> None:
    """An `after` that is not record.<x> / subject.<y> says which forms there are."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: created_at
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].after")
    assert error.message == (
        "'created_at' is not a clock: use record.<timestamp> or subject.<event>"
    )


def test_after_record_timestamp_the_dataset_lacks(files: Files) -> None:
    """`after: record.x` on a dataset without timestamp x names the dataset and its timestamps."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.updated
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].after")
    assert error.message == (
        "rule r1: dataset 'tickets' declares no timestamp 'updated' (declared: created)"
    )


def test_after_subject_event_the_subject_lacks(files: Files) -> None:
    """`after: subject.y` where the subject type has no event y lists its events."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: subject.terminated
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].after")
    assert error.message == (
        "rule r1: subject type 'account' has no event 'terminated' (declared: closed, created)"
    )


def test_after_subject_on_a_dataset_without_subject(files: Files) -> None:
    """A subject clock on a dataset that belongs to no subject is an error at `after`."""
    write_rule(
        files,
        """
        applies_to: {dataset: audit_trail}
        after: subject.closed
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].after")
    assert error.message == (
        "rule r1: dataset 'audit_trail' has no subject, so subject.closed cannot be read"
    )


def test_after_earliest_points_at_the_bad_clock(files: Files) -> None:
    """In `{earliest: [...]}` the error points at the clock that does not exist, not the list."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after:
          earliest:
            - record.created
            - subject.terminated
        retain: P30D
        action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 8, "rules[0].after.earliest[1]")
    assert "no event 'terminated'" in error.message


def test_duplicate_rule_id_in_one_pack(files: Files) -> None:
    """A rule id used twice is an error at the second, naming where the first is."""
    files.write(
        "rules/pack.yaml",
        """
        policy: {name: Test policy}
        rules:
          - id: tickets.delete
            applies_to: {dataset: tickets}
            after: record.created
            retain: P30D
            action: delete
          - id: tickets.delete
            applies_to: {dataset: tickets}
            after: record.created
            retain: P1Y
            action: delete
        """,
    )
    error = files.error()
    pack = files.path("rules/pack.yaml")
    assert where(error) == (pack, 8, "rules[1].id")
    assert error.message == f"duplicate rule id 'tickets.delete' (first declared in {pack}:3)"


def test_duplicate_rule_id_across_packs(files: Files) -> None:
    """A rule id reused by another pack names the first pack's file and line."""
    files.write(
        "rules/pack.yaml",
        """
        policy: {name: First}
        rules:
          - id: other
            applies_to: {dataset: audit_trail}
            after: record.created
            retain: P1Y
            action: delete
          - id: tickets.delete
            applies_to: {dataset: tickets}
            after: record.created
            retain: P30D
            action: delete
        """,
    )
    files.write(
        "rules/second.yaml",
        """
        policy: {name: Second}
        rules:
          - applies_to: {dataset: tickets}
            id: tickets.delete
            after: record.created
            retain: P1Y
            action: delete
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/second.yaml"), 4, "rules[0].id")
    assert error.message == (
        f"duplicate rule id 'tickets.delete' (first declared in {files.path('rules/pack.yaml')}:8)"
    )


def test_anonymize_rule_without_strategies(files: Files) -> None:
    """An anonymize rule must say how each field is anonymized."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: anonymize
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 3, "rules[0].anonymize")
    assert error.message == "an anonymize rule needs `anonymize: {field: strategy, ...}`"


def test_strategies_on_a_delete_rule(files: Files) -> None:
    """Strategies on a rule that deletes are an error at `anonymize`."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: delete
        anonymize: {email: hash}
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 8, "rules[0].anonymize")
    assert error.message == "`anonymize` strategies given on a delete rule"


def test_unknown_strategy(files: Files) -> None:
    """An unknown strategy is an error at the field that names it, listing the strategies."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: anonymize
        anonymize:
          email: hash
          ip: scramble
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 10, "rules[0].anonymize.ip")
    assert error.message == (
        "unknown anonymize strategy 'scramble'; allowed: null, redact, hash, mask, truncate_ip, "
        "generalize_date, email_domain"
    )


def test_strategy_on_a_field_the_dataset_does_not_declare(files: Files) -> None:
    """A strategy on a personal field the dataset does not declare names the declared ones."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: anonymize
        anonymize:
          email: hash
          phone: redact
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 10, "rules[0].anonymize.phone")
    assert error.message == (
        "rule r1: dataset 'tickets' declares no personal field 'phone' (declared: email, ip)"
    )


def test_hash_without_hmac_key(files: Files) -> None:
    """`hash` needs a key: the error is at the field using it and says how to set one."""
    files.write("config.yaml", CONFIG.replace("hmac_key: not-a-real-key", "dry_run: true"))
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: anonymize
        anonymize:
          ip: truncate_ip
          email: hash
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 10, "rules[0].anonymize.email")
    assert error.message == "rule r1: the hash strategy needs hmac_key (set RETENTION_HMAC_KEY)"


def test_bad_cron_in_rule_schedule(files: Files) -> None:
    """A rule's schedule that is no cron expression is an error at `schedule`, with an example."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: delete
        schedule: "61 3 * * *"
        """,
    )
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 8, "rules[0].schedule")
    assert error.message.startswith("'61 3 * * *' is not a valid cron expression")
    assert "0 3 * * *" in error.message


def test_pack_without_policy(files: Files) -> None:
    """A pack must say which policy it implements."""
    files.write("rules/pack.yaml", "rules: []\n")
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 1, "policy")
    assert error.message == "required field is missing"


# --- rule overrides ----------------------------------------------------------------------------


def test_override_for_an_unknown_rule(files: Files) -> None:
    """An override naming no loaded rule is an error at its key."""
    files.write(
        "config.yaml",
        CONFIG + "rule_overrides:\n  tickets.delete: {retain: P60D}\n  ticket.delete: {}\n",
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 30, "rule_overrides.ticket.delete")
    assert error.message == (
        "override for unknown rule 'ticket.delete' (did you mean 'tickets.delete'?)"
    )


def test_override_with_a_bad_duration(files: Files) -> None:
    """A bad duration in an override is an error at the override's field, in the config file."""
    files.write(
        "config.yaml",
        CONFIG + "rule_overrides:\n  tickets.delete:\n    enabled: true\n    retain: 60 dayz\n",
    )
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 31, "rule_overrides.tickets.delete.retain")
    assert error.message.startswith("invalid duration '60 dayz'")


def test_override_with_a_bad_schedule(files: Files) -> None:
    """A bad cron in an override is an error at its `schedule`."""
    files.write(
        "config.yaml", CONFIG + "rule_overrides:\n  tickets.delete:\n    schedule: nightly\n"
    )
    error = files.error()
    assert where(error) == (
        files.path("config.yaml"),
        30,
        "rule_overrides.tickets.delete.schedule",
    )
    assert "'nightly' is not a valid cron expression" in error.message


def test_override_applies(files: Files) -> None:
    """A valid override replaces the shipped value; `enabled: false` removes the rule."""
    files.write("config.yaml", CONFIG + "rule_overrides:\n  tickets.delete: {retain: 60 days}\n")
    assert str(load_config(files.config).rule("tickets.delete").retain) == "P60D"
    files.write("config.yaml", CONFIG + "rule_overrides:\n  tickets.delete: {enabled: false}\n")
    config = load_config(files.config)
    assert (config.rules, config.disabled_rules) == ((), ("tickets.delete",))


# --- holds -------------------------------------------------------------------------------------


def test_hold_for_an_unknown_subject_type(files: Files) -> None:
    """A hold on an undeclared subject type is an error at that type, listing the known."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            subjects:
              customer: [4411]
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 4, "holds[0].subjects.customer")
    assert error.message == "unknown subject type 'customer' (known: account)"


def test_hold_with_an_empty_subject_list(files: Files) -> None:
    """An empty id list would silently release the hold: it is an error, not "nothing"."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            subjects:
              account: []
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 4, "holds[0].subjects.account")
    assert "empty list holds no record" in error.message


def test_hold_for_an_unknown_dataset(files: Files) -> None:
    """A hold scoped to an undeclared dataset is an error at that list entry."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            datasets:
              - tickets
              - ledger
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 5, "holds[0].datasets[1]")
    assert error.message == "unknown dataset 'ledger' (known: audit_trail, tickets)"


def test_hold_for_an_unknown_rule(files: Files) -> None:
    """A hold scoped to a rule that is not loaded is an error at that entry, with a hint."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            rules: [tickets.delete, ticket.delete, invoices.keep]
        """,
    )
    near, far = files.errors()
    assert where(near) == (files.path("holds.yaml"), 3, "holds[0].rules[1]")
    assert near.message == "unknown rule 'ticket.delete' (did you mean 'tickets.delete'?)"
    assert where(far) == (files.path("holds.yaml"), 3, "holds[0].rules[2]")
    assert far.message == "unknown rule 'invoices.keep' (known: tickets.delete)"


def test_duplicate_hold_ids(files: Files) -> None:
    """Two holds with the same id: the second is the error, and it says where the first is."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            reason: first
          - reason: second
            id: case-1
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 5, "holds[1].id")
    assert error.message == "duplicate hold id 'case-1' (first on line 2)"


def test_hold_review_by_not_a_date(files: Files) -> None:
    """A `review_by` that is not a date is an error at its line."""
    files.write(
        "holds.yaml",
        """
        holds:
          - id: case-1
            placed_by: legal@acme.example
            review_by: next spring
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 4, "holds[0].review_by")
    assert error.message.startswith("Input should be a valid date")
    assert error.message.endswith("(use YYYY-MM-DD, e.g. 2027-05-01)")


def test_unknown_field_in_a_hold(files: Files) -> None:
    """A misspelt hold field is an unknown field with the likely intended one."""
    files.write(
        "holds.yaml",
        """
        freeze: false
        holds:
          - id: case-1
            reson: dispute
        """,
    )
    error = files.error()
    assert where(error) == (files.path("holds.yaml"), 4, "holds[0].reson")
    assert error.message == "unknown field (did you mean 'reason'?)"


# --- environment overrides ---------------------------------------------------------------------


def test_env_override_with_a_bad_value_names_the_variable(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad RETENTION_* value is blamed on the environment variable, not on the file."""
    monkeypatch.setenv("RETENTION_BATCH_SIZE", "abc")
    error = files.error()
    assert where(error) == ("environment RETENTION_BATCH_SIZE", None, "batch_size")
    assert error.message == "Input should be a valid integer, unable to parse string as an integer"


def test_env_override_blamed_even_when_the_file_sets_the_field(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment wins over the file, so a bad env value is blamed even if the file is fine."""
    files.write("config.yaml", CONFIG + "batch_size: 100\n")
    monkeypatch.setenv("RETENTION_BATCH_SIZE", "abc")
    error = files.error()
    assert where(error) == ("environment RETENTION_BATCH_SIZE", None, "batch_size")


def test_nested_env_override_with_a_bad_value(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested override (`__`) that is out of range names its variable and the dotted field."""
    monkeypatch.setenv("RETENTION_LIMITS__MAX_FRACTION", "2")
    error = files.error()
    assert where(error) == (
        "environment RETENTION_LIMITS__MAX_FRACTION",
        None,
        "limits.max_fraction",
    )
    assert error.message == "Input should be less than or equal to 1"


def test_env_override_of_a_mapping_that_is_not_json(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list or mapping setting from the environment must be JSON; the error says so, no crash."""
    monkeypatch.setenv("RETENTION_LIMITS", "max_fraction=0.2")
    error = files.error()
    assert where(error) == ("environment RETENTION_LIMITS", None, "limits")
    assert error.message.startswith("not valid JSON")
    assert "RETENTION_LIMITS__MAX_FRACTION=0.2" in error.message


def test_nested_env_override_wins_and_keeps_the_rest(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RETENTION_LIMITS__MAX_FRACTION overrides one limit; the file's other limits stay."""
    files.write("config.yaml", CONFIG + "limits:\n  max_fraction: 0.5\n  max_actions_per_run: 10\n")
    monkeypatch.setenv("RETENTION_LIMITS__MAX_FRACTION", "0.2")
    limits = load_config(files.config).settings.limits
    assert (limits.max_fraction, limits.max_actions_per_run) == (0.2, 10)


def test_hmac_key_from_the_environment(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    """RETENTION_HMAC_KEY satisfies the `hash` strategy when the file has no key."""
    files.write("config.yaml", CONFIG.replace("hmac_key: not-a-real-key", "dry_run: true"))
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: anonymize
        anonymize: {email: hash}
        """,
    )
    monkeypatch.setenv("RETENTION_HMAC_KEY", "from-the-environment")
    config = load_config(files.config)
    assert config.settings.hmac_key is not None
    assert config.settings.hmac_key.get_secret_value() == "from-the-environment"


# --- several at once ---------------------------------------------------------------------------


def test_several_errors_in_one_file_are_reported_together(files: Files) -> None:
    """Every schema error in a file is reported in one pass, each at its own line."""
    files.write(
        "config.yaml",
        """
        rules: []
        batch_size: 0
        timezone: Mars/Olympus
        service: {port: 99999}
        """,
    )
    assert [(e.line, e.field) for e in files.errors()] == [
        (2, "batch_size"),
        (3, "timezone"),
        (4, "service.port"),
    ]


def test_errors_across_config_packs_and_holds_are_reported_together(files: Files) -> None:
    """Config, every rule pack and the holds file are all checked before anything is reported."""
    files.write(
        "config.yaml",
        CONFIG.replace("    store: app\n    table: audit", "    store: ap\n    table: audit"),
    )
    files.write(
        "rules/a.yaml",
        """
        policy: {name: A}
        rules:
          - id: a1
            applies_to: {dataset: tickets}
            after: record.created
            retain: forever
            action: delete
        """,
    )
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: subject.terminated
        retain: P30D
        action: delete
        """,
    )
    files.write("holds.yaml", "holds:\n  - id: case-1\n    datasets: [ledger]\n")
    errors = files.errors()
    assert [where(e) for e in errors] == [
        (files.path("config.yaml"), 23, "datasets.audit_trail.store"),
        (files.path("rules/a.yaml"), 6, "rules[0].retain"),
        (files.path("rules/pack.yaml"), 5, "rules[0].after"),
        (files.path("holds.yaml"), 3, "holds[0].datasets[0]"),
    ]


# --- the command line --------------------------------------------------------------------------


SECRET_URL = "postgresql+psycopg://u:hunter2@127.0.0.1:1/app"
SECRET_KEY = "hmac-s3cr3t-do-not-print"


def make_app_db(files: Files) -> None:
    """Create app.db with the tables the shared config names."""
    with sqlite3.connect(files.root / "app.db") as connection:
        connection.executescript(
            """
            CREATE TABLE accounts (id INTEGER PRIMARY KEY, created_at TIMESTAMP,
                                   closed_at TIMESTAMP);
            CREATE TABLE tickets (id INTEGER PRIMARY KEY, account_id INTEGER,
                                  created_at TIMESTAMP, email TEXT, ip TEXT);
            CREATE TABLE audit_trail (id INTEGER PRIMARY KEY, created_at TIMESTAMP);
            """
        )
    connection.close()


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_cli_validate_exits_2_with_one_line_per_error(files: Files, runner: CliRunner) -> None:
    """`validate` on bad config exits 2 and prints `file:line: field: message`, one per line."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: subject.terminated
        retain: P30D
        action: anonymize
        anonymize: {phone: redact}
        """,
    )
    result = runner.invoke(app, ["validate", "--config", str(files.config)])
    assert result.exit_code == 2
    assert result.stdout == ""
    pack = files.path("rules/pack.yaml")
    assert result.stderr.splitlines() == [
        f"error: {pack}:5: rules[0].after: rule r1: subject type 'account' has no event "
        "'terminated' (declared: closed, created)",
        f"error: {pack}:8: rules[0].anonymize.phone: rule r1: dataset 'tickets' declares no "
        "personal field 'phone' (declared: email, ip)",
    ]


def test_cli_error_lines_are_verbatim(files: Files, runner: CliRunner) -> None:
    """Error text is printed as is: `[...]` in a value is not eaten as terminal markup."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: delete
        schedule: "[nightly] 0 3 * * *"
        """,
    )
    result = runner.invoke(app, ["validate", "--config", str(files.config)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"error: {files.path('rules/pack.yaml')}:8: rules[0].schedule: "
        "'[nightly] 0 3 * * *' is not a valid cron expression"
    )


def test_cli_nothing_runs_on_bad_config(files: Files, runner: CliRunner) -> None:
    """With a config error, `plan` exits 2 before any store is opened (no database is created);
    under --json the error is also one JSON object on stdout, with its file, line and field."""
    write_rule(
        files,
        """
        applies_to: {dataset: tickets}
        after: record.created
        retain: P30D
        action: delete
        grace: soon
        """,
    )
    result = runner.invoke(app, ["plan", "--config", str(files.config), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert (error["file"], error["line"], error["field"], error["exit_code"]) == (
        files.path("rules/pack.yaml"),
        8,
        "rules[0].grace",
        2,
    )
    assert f"{files.path('rules/pack.yaml')}:8: rules[0].grace: invalid duration" in result.stderr
    assert not (files.root / "app.db").exists()
    assert not (files.root / "state.db").exists()


def test_cli_env_error_names_the_variable(
    files: Files, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad environment override is printed with the variable's name."""
    monkeypatch.setenv("RETENTION_BATCH_SIZE", "abc")
    result = runner.invoke(app, ["validate", "--config", str(files.config)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: environment RETENTION_BATCH_SIZE: batch_size: ")


def secret_config(files: Files) -> None:
    """The shared config with a password in a store URL and in the state DB URL, and a key."""
    files.write(
        "config.yaml",
        CONFIG.replace("hmac_key: not-a-real-key", f"hmac_key: {SECRET_KEY}")
        .replace("state_db: sqlite:///state.db", f"state_db: {SECRET_URL}")
        .replace(
            '  app: {kind: sql, url: "sqlite:///app.db"}',
            '  app: {kind: sql, url: "sqlite:///app.db"}\n'
            f'  crm: {{kind: sql, url: "{SECRET_URL}"}}',
        ),
    )


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        assert "hunter2" not in output
        assert SECRET_KEY not in output


def test_cli_secrets_never_printed(files: Files, runner: CliRunner) -> None:
    """Passwords in URLs and the HMAC key appear in no output: text, --json, store errors."""
    make_app_db(files)
    secret_config(files)
    for args in (["validate"], ["validate", "--json"], ["plan", "--json"], ["holds", "--json"]):
        result = runner.invoke(app, [*args, "--config", str(files.config)])
        assert result.exit_code in (0, 3), (args, result.output)
        assert_no_secret(result.stdout, result.stderr)
    report = json.loads(runner.invoke(app, ["validate", "--json", "-c", str(files.config)]).stdout)
    # the state DB is checked too: its URL (with the password) is as unreachable as the store's
    assert [p["where"] for p in report["problems"]] == ["state_db", "stores.crm"]


def test_cli_secrets_never_in_config_errors(files: Files, runner: CliRunner) -> None:
    """Config errors around secret values name the field but never echo the secret."""
    files.write(
        "config.yaml",
        f"""
        rules: []
        hmac_key: {{value: {SECRET_KEY}}}
        stores:
          app: {{kind: sql, url: "{SECRET_URL}", password: hunter2}}
          crm: {{kind: mysql, url: "{SECRET_URL}"}}
          old: {{kind: sql, url: ["{SECRET_URL}"]}}
          bad: {{kind: sql, url: "postgresql://u:hunter2@db:five/app"}}
        """,
    )
    for args in (["validate"], ["validate", "--json"], ["plan", "--json"]):
        result = runner.invoke(app, [*args, "--config", str(files.config)])
        assert result.exit_code == 2
        assert_no_secret(result.stdout, result.stderr)
        fields = [line.split(": ")[2] for line in result.stderr.splitlines()]
        assert fields == [
            "hmac_key",
            "stores.app.password",
            "stores.crm.kind",
            "stores.old.url",
            "stores.bad.url",
        ]


# --- input that no run could read with certainty -------------------------------------------


def test_an_empty_key_is_refused(files: Files) -> None:
    """`key: []` names no primary key: refused with its line, before anything runs."""
    files.write(
        "config.yaml",
        CONFIG.replace("    key: id\n    category: support", "    key: []\n    category: support"),
    )
    assert where(files.error()) == (files.path("config.yaml"), 17, "datasets.tickets.key")


@pytest.mark.parametrize("period", ["P9999Y", "P100000000D"])
def test_a_period_with_no_due_date_is_refused_with_its_field(files: Files, period: str) -> None:
    """A period so long that no due date exists is refused by validate, naming the field."""
    files.write("rules/pack.yaml", PACK.replace("retain: P30D", f"retain: {period}"))
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 6, "rules[0].retain")
    assert "longer than 1000 years" in error.message


def test_a_sum_of_periods_past_the_limit_is_refused(files: Files) -> None:
    """retain + grace + within past the limit: refused at the rule, not an overflow in plan."""
    files.write(
        "rules/pack.yaml",
        PACK.replace("retain: P30D", "retain: P600Y\n    grace: P300Y\n    within: P200Y"),
    )
    assert "retain + grace + within" in files.error().message


def test_validate_names_the_file_and_line_of_a_missing_column(
    files: Files, runner: CliRunner
) -> None:
    """A schema problem names where config declares the field: file, line, field."""
    make_app_db(files)
    files.write(
        "config.yaml",
        CONFIG.replace(
            "timestamps: {created: created_at}\n    personal",
            "timestamps: {created: opened_at}\n    personal",
        ),
    )
    result = runner.invoke(app, ["validate", "--config", str(files.config)])
    assert result.exit_code == 2
    assert f"{files.path('config.yaml')}:20: datasets.tickets.timestamps.created:" in result.stderr
    report = json.loads(runner.invoke(app, ["validate", "--json", "-c", str(files.config)]).stdout)
    (problem,) = report["problems"]
    assert (problem["file"], problem["line"]) == (files.path("config.yaml"), 20)


def test_a_missing_sqlite_store_file_is_bad_input_and_is_not_created(
    files: Files, runner: CliRunner
) -> None:
    """A store's SQLite file that does not exist is a typo (exit 2), never a new empty file."""
    for args in (["validate"], ["plan"]):
        result = runner.invoke(app, [*args, "--config", str(files.config)])
        assert result.exit_code == 2, (args, result.output)
        assert "SQLite database file not found" in result.stderr
    assert not (files.root / "app.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+pg8000://u@db/app", "pip install 'retention[postgres]'"),
        ("mysql+mysqldb://u@db/app", "pip install 'retention[mysql]'"),
        ("nosuchdb://u@db/app", "unknown database dialect or driver 'nosuchdb'"),
    ],
)
def test_a_store_url_this_install_cannot_open_is_bad_input(
    files: Files, runner: CliRunner, url: str, expected: str
) -> None:
    """A missing driver names the extra that installs it; an unknown dialect says so; exit 2."""
    files.write("config.yaml", CONFIG.replace('url: "sqlite:///app.db"', f'url: "{url}"'))
    result = runner.invoke(app, ["validate", "--config", str(files.config)])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr


def test_a_rounded_clock_loads_and_a_bad_period_names_its_line(files: Files) -> None:
    """`after: {event: ..., round_to: ...}` loads; an unknown period is an error at `after`."""
    files.write(
        "rules/pack.yaml",
        """
        policy: {name: Test policy}
        rules:
          - id: tickets.keep
            applies_to: {dataset: tickets}
            after: {event: record.created, round_to: fiscal_year_end}
            retain: P5Y
            action: keep
        """,
    )
    (rule,) = load_config(files.config).rules
    assert str(rule.after) == "record.created rounded to fiscal_year_end"
    text = (files.root / "rules/pack.yaml").read_text().replace("fiscal_year_end", "week_end")
    files.write("rules/pack.yaml", text)
    error = files.error()
    assert where(error) == (files.path("rules/pack.yaml"), 5, "rules[0].after")
    assert "round_to must be one of year_end, month_end, fiscal_year_end" in error.message


def test_fiscal_year_start_must_be_a_day_of_every_year(files: Files) -> None:
    """fiscal_year_start is MM-DD; 29 February is refused at its line."""
    files.write("config.yaml", "rules: []\nfiscal_year_start: 02-29\n")
    error = files.error()
    assert where(error) == (files.path("config.yaml"), 2, "fiscal_year_start")
    assert "use MM-DD" in error.message

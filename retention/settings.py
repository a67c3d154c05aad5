"""The settings model: one YAML file, overridden by ``RETENTION_*`` environment variables.

Every field can come from the file named by ``--config`` / ``RETENTION_CONFIG`` and be overridden
by an environment variable (nested with ``__``: ``RETENTION_LIMITS__MAX_FRACTION=0.2``).
Secrets (URLs that may hold passwords, the HMAC key) are ``SecretStr``: they never appear in
``repr``, logs, errors or ``--json`` output.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .durations import Duration
from .periods import YearStart, parse_year_start
from .weakkeys import key_problem

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
_STRICT = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A validator's ValueError that names the field at fault below the value it checked.

    A model-level check (``DatasetConfig`` given both ``table`` and ``prefix``) fails for the
    whole model; ``field`` lets the error point at the offending key and its line instead.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class Model(BaseModel):
    """Base for config value objects: frozen, unknown fields are errors."""

    model_config = _STRICT


class SqlStoreConfig(Model):
    """A SQL database. ``settle_wait``: seconds recovery waits for the rows of an interrupted
    batch that another process (a paused replica) may still be committing, before it leaves
    the batch pending for the next run (:mod:`retention.stores.sql.settle`)."""

    kind: Literal["sql"]
    url: SecretStr
    connect_timeout: float = Field(10.0, gt=0)
    settle_wait: float = Field(10.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _parsable_url(cls, value: SecretStr) -> SecretStr:
        return check_database_url(value)

    def relative_to(self, base: Path) -> SqlStoreConfig:
        """A relative SQLite path in the URL, made relative to `base` (the config's folder)."""
        url = sqlite_relative_to(self.url.get_secret_value(), base)
        return self.model_copy(update={"url": SecretStr(url)})


class S3StoreConfig(Model):
    kind: Literal["s3"]
    bucket: str = Field(min_length=3)
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    max_concurrency: int = Field(4, ge=1, le=64)
    max_attempts: int = Field(10, ge=1, le=20)  # per request, with backoff (botocore adaptive)
    mirror_holds: bool = False

    def relative_to(self, base: Path) -> S3StoreConfig:
        return self


class FilesystemStoreConfig(Model):
    kind: Literal["filesystem"]
    root: str

    def relative_to(self, base: Path) -> FilesystemStoreConfig:
        """A relative root, made relative to `base` (the config's folder)."""
        root = Path(self.root).expanduser()
        return self.model_copy(update={"root": str(root if root.is_absolute() else base / root)})


class DeltaStoreConfig(Model):
    """Delta Lake tables (delta-rs) in folders under `root`: a local directory or
    ``s3://bucket/prefix``. On S3 the credentials are `access_key_id`/`secret_access_key`
    (secrets) when given, else delta-rs's own chain (``AWS_*`` environment variables, a
    profile, instance metadata), as for an S3 store; `endpoint_url` names an S3-compatible
    server (path-style requests; ``http://`` allowed only for such an endpoint). Commits use
    S3's conditional writes, so a concurrent writer's commit fails ours instead of replacing it.
    `purge_after`: how long deleted rows stay in the table's files (time travel) before they
    are vacuumed; None: the table's own ``delta.deletedFileRetentionDuration`` (delta's
    default, 7 days)."""

    kind: Literal["delta"]
    root: str
    purge_after: Duration | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None

    @field_validator("root")
    @classmethod
    def _known_root(cls, value: str) -> str:
        if value.startswith("s3://"):
            if not value.removeprefix("s3://").split("/", 1)[0]:
                raise ValueError(f"root {value!r} names no bucket (s3://BUCKET/PREFIX)")
            return value.rstrip("/")
        if "://" in value and not value.startswith("file://"):
            raise ValueError(
                f"root {value.split('://', 1)[0]}:// is not supported: delta tables live in a "
                "local directory or under s3://BUCKET/PREFIX"
            )
        return value.removeprefix("file://")

    @model_validator(mode="after")
    def _s3_fields(self) -> DeltaStoreConfig:
        given = [
            name
            for name in ("region", "endpoint_url", "access_key_id", "secret_access_key")
            if getattr(self, name) is not None
        ]
        if given and not self.on_s3:
            raise FieldError(f"{given[0]} applies to an s3:// root only", given[0])
        if (self.access_key_id is None) != (self.secret_access_key is None):
            missing = "secret_access_key" if self.secret_access_key is None else "access_key_id"
            raise FieldError("access_key_id and secret_access_key go together", missing)
        return self

    @property
    def on_s3(self) -> bool:
        return self.root.startswith("s3://")

    def relative_to(self, base: Path) -> DeltaStoreConfig:
        """A relative local root, made relative to `base` (the config's folder)."""
        if self.on_s3:
            return self
        root = Path(self.root).expanduser()
        return self.model_copy(update={"root": str(root if root.is_absolute() else base / root)})


class IcebergStoreConfig(Model):
    """Iceberg tables (pyiceberg) registered in a SQL catalog: `catalog` is the catalog
    database's SQLAlchemy URL (SQLite or PostgreSQL, a secret: it may hold a password),
    `catalog_name` the catalog's name in it, `warehouse` the local directory new tables' files
    go to (``s3://`` warehouses are refused: not tested here). `purge_after`: how long deleted
    rows stay readable at older snapshots before a run expires them and removes their files;
    None: the table's own ``history.expire.max-snapshot-age-ms`` (Iceberg's default, 5 days)."""

    kind: Literal["iceberg"]
    catalog: SecretStr
    warehouse: str
    catalog_name: str = Field("default", min_length=1)
    purge_after: Duration | None = None

    @field_validator("catalog")
    @classmethod
    def _parsable_url(cls, value: SecretStr) -> SecretStr:
        return check_database_url(value)

    @field_validator("warehouse")
    @classmethod
    def _local_warehouse(cls, value: str) -> str:
        if "://" in value and not value.startswith("file://"):
            raise ValueError(
                f"warehouse {value.split('://', 1)[0]}:// is not supported: iceberg tables must "
                "live in a local directory (the physical step deletes their files, and was only "
                "tested on a local file system)"
            )
        return value.removeprefix("file://")

    def relative_to(self, base: Path) -> IcebergStoreConfig:
        """A relative warehouse and SQLite catalog path, made relative to `base`."""
        root = Path(self.warehouse).expanduser()
        url = sqlite_relative_to(self.catalog.get_secret_value(), base)
        return self.model_copy(
            update={
                "warehouse": str(root if root.is_absolute() else base / root),
                "catalog": SecretStr(url),
            }
        )


StoreConfig = Annotated[
    SqlStoreConfig | S3StoreConfig | FilesystemStoreConfig | DeltaStoreConfig | IcebergStoreConfig,
    Field(discriminator="kind"),
]


class SubjectConfig(Model):
    """A subject type whose lifecycle events are read from a table (or view)."""

    store: str
    table: str
    key: str
    events: dict[str, str] = Field(default_factory=dict)
    timezone: str | None = None


class SubjectLink(Model):
    """A dataset's column naming the subject (of type `type`) each record belongs to."""

    type: str
    column: str


class CascadeConfig(Model):
    dataset: str
    column: str


class DatasetConfig(Model):
    """One collection inside a store: a table, an S3 key prefix or a file glob."""

    store: str
    table: str | None = None
    prefix: str | None = None
    glob: str | None = None
    key: str | list[str] | None = None
    category: str
    # one subject, or several (``[{type: account, column: account_id}, {type: user, ...}]``):
    # the first is the one a rule reads unless it names another (`subject:` on the rule)
    subject: SubjectLink | list[SubjectLink] | None = None
    timestamps: dict[str, str] = Field(default_factory=dict)
    personal: dict[str, str] = Field(default_factory=dict)
    cascade: list[CascadeConfig] = Field(default_factory=list)
    timezone: str | None = None
    tag: str | None = None
    # deleted records are kept this long in a quarantine table, restorable, then purged
    quarantine: Duration | None = None
    purge_after: Duration | None = None  # lake tables: overrides the store's

    @model_validator(mode="after")
    def _one_location(self) -> DatasetConfig:
        given = [name for name in ("table", "prefix", "glob") if getattr(self, name) is not None]
        message = "a dataset needs exactly one of table, prefix or glob"
        if not given:
            raise ValueError(message)
        if len(given) > 1:
            raise FieldError(f"{message} (this one gives {' and '.join(given)})", given[-1])
        if self.table is not None and self.key is None:
            raise FieldError(
                "a table dataset needs a key (its primary key column or columns)", "key"
            )
        if isinstance(self.subject, list):
            if not self.subject:
                raise FieldError(
                    "subject lists no subject: give one or more {type, column}, or remove it",
                    "subject",
                )
            types = [link.type for link in self.subject]
            if len(set(types)) != len(types):
                raise FieldError(
                    "subject names a subject type twice: a rule could not tell which column "
                    "it reads",
                    "subject",
                )
        if self.key is not None:
            columns = [self.key] if isinstance(self.key, str) else self.key
            if not columns or not all(column.strip() for column in columns):
                raise FieldError("the key names no column: give the primary key column(s)", "key")
            if len(set(columns)) != len(columns):
                raise FieldError("the key names a column twice", "key")
        return self

    @property
    def subject_links(self) -> tuple[SubjectLink, ...]:
        """Every subject link, the primary (first) one first; none for an object dataset."""
        if self.subject is None:
            return ()
        return tuple(self.subject) if isinstance(self.subject, list) else (self.subject,)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The primary-key column names, in order."""
        if self.key is None:
            return ()
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)


class Limits(Model):
    max_fraction: float = Field(0.5, gt=0, le=1)
    max_actions_per_run: int = Field(1_000_000, ge=1)
    approval_margin: float = Field(0.1, ge=0, le=10)  # an approval is void past this change
    # a live run acting on more than this share of a dataset waits for an approval, whatever
    # the rule says (None: only rules marked `approval: required` do)
    approval_share: float | None = Field(None, gt=0, le=1)


class CheckpointS3(Model):
    """How to reach an ``s3://`` checkpoint destination; unset fields take boto3's defaults
    (``AWS_*`` environment variables, the instance role)."""

    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class AuditSettings(Model):
    """The audit log: how record keys are kept, which keys vouch for it, where it is anchored.

    ``previous_hmac_keys``: keys that sealed older entries, kept after a rotation of
    ``hmac_key`` so those entries still verify (they never seal anything new).
    ``signing_key``: an Ed25519 private key (PEM, or base64 of its 32 raw bytes) that signs
    checkpoints; without it checkpoints are sealed with ``hmac_key``. ``checkpoints``: a
    directory or ``s3://bucket/prefix`` where `retention audit checkpoint` and `retention serve`
    (after each live run) write them, and where `audit verify` reads them. On a bucket with
    Object Lock each checkpoint is locked in ``checkpoint_lock_mode`` for
    ``checkpoint_lock_days``.
    """

    keys: Literal["plain", "hmac", "none"] = "hmac"
    previous_hmac_keys: list[SecretStr] = Field(default_factory=list)
    signing_key: SecretStr | None = None
    checkpoints: str | None = None
    checkpoint_s3: CheckpointS3 = Field(default_factory=CheckpointS3)
    checkpoint_lock_days: int = Field(365, ge=1, le=36500)
    checkpoint_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"

    @field_validator("checkpoints")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("an s3:// checkpoint destination needs a bucket: s3://bucket/prefix")
        return value or None


class ServiceSettings(Model):
    """`retention serve`: where /healthz, /readyz and /metrics listen, and its timings.

    ``lease_ttl``: seconds a replica holds the executor lease without renewing it; a replica that
    stops renewing (paused, partitioned, killed) is taken over after this long. ``stop_timeout``:
    seconds SIGTERM waits for the current batch before the process gives up and exits 1 (keep it
    below the supervisor's grace period; the next start reconciles the batch).
    ``lease_scope``: ``state_db`` (default) — one lease for the whole state DB, one replica acts
    at a time; ``dataset`` — one lease per shard (a dataset with its cascade children), so
    replicas on one state DB each lead a fair share of the shards (:mod:`retention.shards`).
    """

    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    lease_ttl: float = Field(60.0, ge=2, le=3600)
    stop_timeout: float = Field(90.0, gt=0, le=3600)
    lease_scope: Literal["state_db", "dataset"] = "state_db"


class RuleOverride(Model):
    """A deployer's change to a shipped rule, without editing the pack."""

    enabled: bool = True
    retain: str | None = None
    grace: str | None = None
    within: str | None = None
    schedule: str | None = None
    where: dict[str, Any] | None = None
    subject: str | None = None  # the subject type the rule reads, on a dataset with several


class _DictSource(PydanticBaseSettingsSource):
    """The YAML file's data, ranked below environment variables."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """Everything a config file says; see DESIGN.md for each field."""

    model_config = SettingsConfigDict(
        env_prefix="RETENTION_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    state_db: SecretStr = SecretStr("sqlite:///retention-state.db")
    rules: list[str] = Field(default_factory=lambda: ["rules/"])
    holds: str | None = None
    dry_run: bool = True
    schedule: str = "0 3 * * *"
    timezone: str = "UTC"
    # the first day of the financial year (MM-DD), for clocks rounded to fiscal_year_end
    fiscal_year_start: str = "01-01"
    batch_size: int = Field(100_000, ge=1, le=1_000_000)
    batch_seconds: float = Field(1.0, gt=0, le=3600)
    limits: Limits = Field(default_factory=Limits)
    hmac_key: SecretStr | None = None
    audit: AuditSettings = Field(default_factory=AuditSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    stores: dict[str, StoreConfig] = Field(default_factory=dict)
    subjects: dict[str, SubjectConfig] = Field(default_factory=dict)
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    rule_overrides: dict[str, RuleOverride] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the YAML file; the environment must win over it.
        data = getattr(init_settings, "init_kwargs", {})
        return env_settings, _DictSource(settings_cls, data)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        check_zone(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("fiscal_year_start", mode="before")
    @classmethod
    def _valid_year_start(cls, value: object) -> object:
        parse_year_start(str(value))
        return str(value)

    @field_validator("state_db")
    @classmethod
    def _parsable_url(cls, value: SecretStr) -> SecretStr:
        return check_database_url(value)

    @field_validator("hmac_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        problem = key_problem(value.get_secret_value()) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("stores", "subjects", "datasets")
    @classmethod
    def _safe_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise FieldError(f"{name!r} is not a valid name (letters, digits, _ . -)", name)
        return value

    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    def fiscal_start(self) -> YearStart:
        """The first day of the financial year as (month, day)."""
        return parse_year_start(self.fiscal_year_start)


def sqlite_relative_to(url: str, base: Path) -> str:
    """A SQLite URL whose relative file path is made relative to `base`; other URLs as given."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(base / rest)
    return url


def check_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or a ValueError saying it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def check_cron(value: str) -> str:
    """`value` if it is a cron expression, else a ValueError showing what one looks like."""
    if not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a valid cron expression (five fields: minute hour day-of-month "
            "month day-of-week, e.g. '0 3 * * *' for 03:00 every day)"
        )
    return value


def check_database_url(value: SecretStr) -> SecretStr:
    """`value` if SQLAlchemy can parse it; the error never repeats it (it may hold a password)."""
    try:
        make_url(value.get_secret_value())
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL: use dialect+driver://user:password@host:port/database, "
            "e.g. postgresql+psycopg://retention@db/app or sqlite:///app.db (value not shown)"
        ) from None
    return value

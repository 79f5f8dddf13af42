"""Settings from ``FLOWRUN_*`` environment variables and an optional ``flowrun.toml``.

The environment wins over the file, so a platform engineer can override one value per process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine import redis_url
from engine.dsl.base import Duration
from engine.dsl.retention import KeepFor
from engine.store.base import Keep


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWRUN_", extra="forbid",
                                      toml_file="flowrun.toml")

    home: Path = Field(Path(".flowrun"), description="Folder of the embedded state.")
    flows: Path = Field(Path("flows"), description="Folder of flow files.")
    schemas: Path | None = Field(None, description="Folder of JSON Schemas (default: the "
                                                   "nearest schemas/ above the flows).")
    secrets_file: Path | None = Field(None, description="NAME=value file, mode 0600.")
    redis_url: str | None = Field(None, description="Redis for Celery and state; unset = "
                                  "embedded. redis://host:port/db, or through Redis Sentinel: "
                                  "sentinel://host:port,host:port/master-name/db.")
    broker_url: str | None = Field(None, description="Celery broker when not the Redis above "
                                   "(a sentinel:// URL as for the Redis above).")
    redis_replica_wait: Duration = Field(
        1.0, ge=0, description="With a sentinel:// Redis: how long intake waits for a replica "
        "to hold a new run before answering 202 (WAIT 1); a run no replica took in time is "
        "answered 503, so a failover never loses an accepted run. 0 turns the wait off.")
    database_url: str | None = Field(
        None, description="PostgreSQL (postgresql://user:password@host:5432/db) as the system "
        "of record: runs, dead letters, flow versions and cursors; Redis, when set, keeps the "
        "hot state. Needs flowrunner-ipaas[postgres] and `flowrun db upgrade`.")
    database_pool: int = Field(10, ge=2, le=200, description="Most PostgreSQL connections "
                               "one process opens.")
    workers: int = Field(4, ge=1, le=256, description="Embedded worker threads.")
    max_workers: int | None = Field(
        None, ge=1, le=256, description="Most embedded worker threads: threads are added, up "
        "to this, while runs wait and every thread is in a run (steps waiting on a partner or "
        "a broker), and end after 5 s without work. Default: 8 × workers, or 1 with "
        "workers 1 (one run in steps at a time).")
    idempotency_ttl: Duration = Field(7 * 86400.0, description="How long a delivery id is "
                                                                "remembered.")
    busy_timeout: Duration = Field(5.0, description="Longest wait for a locked state file.")
    durability: Literal["process_crash", "power_loss"] = Field(
        "process_crash", description="What an accepted run survives on the embedded store: "
        "process_crash (SQLite synchronous=NORMAL: a killed process loses nothing; a power "
        "loss may lose the last groups) or power_loss (synchronous=FULL: each group is synced "
        "to disk before its senders are answered).")
    console_token: SecretStr | None = Field(None, description="Token that opens the operations "
                                            "console and its API (Bearer or login form).")
    console_user: str | None = Field(None, description="Console user name (with a password).")
    console_password: SecretStr | None = Field(None, description="Console password.")
    console_users: Path | None = Field(None, description="YAML file of named console users, "
                                       "their roles and password hashes (`flowrun users`); "
                                       "re-read when it changes.")
    console_oidc_issuer: str | None = Field(
        None, description="OpenID Connect issuer of console logins (its "
        "/.well-known/openid-configuration is read); with the client id below. Needs "
        "flowrunner-ipaas[oidc].")
    console_oidc_client_id: str | None = Field(None, description="The console's client id at "
                                               "the OpenID Connect provider.")
    console_oidc_client_secret: SecretStr | None = Field(
        None, description="The client secret (a confidential client); unset: a public client, "
        "PKCE alone.")
    console_oidc_scopes: str = Field("openid profile email", description="Scopes asked for.")
    console_oidc_user_claim: str = Field("preferred_username", description="ID-token claim "
                                         "that names the operator in the audit trail.")
    console_oidc_role_claim: str = Field("groups", description="ID-token claim (a string or a "
                                         "list) whose values console_oidc_roles maps to roles.")
    console_oidc_roles: dict[str, Literal["viewer", "operator", "admin"]] = Field(
        default_factory=dict, description="Role of each value of the role claim, as JSON: "
        '{"flowrun-ops": "operator"}; the highest role matched wins, no match: no login.')
    console_job_stale: Duration = Field(60.0, gt=0, description=(
        "A console bulk job that records no progress for this long counts as interrupted (its "
        "server process stopped) and can be resumed for the entries it left."))
    console_oidc_redirect_url: str | None = Field(
        None, description="The callback URL registered at the provider, when the server is "
        "behind a proxy (default: /console/oidc/callback on the URL the browser used).")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Port of a Celery "
                                     "worker's /metrics (unset: not served).")
    # `flowrun serve` refuses a request over these before the app sees it (431, 408)
    access_log: bool = Field(True, description="`flowrun serve` logs one line per request "
                             "(method, path, status, duration, correlation id, client).")
    gc_tuning: bool = Field(True, description="Long-running processes (serve, worker, consume, "
                            "scheduler) freeze what they hold after start-up and collect "
                            "garbage less often (engine/gc_tuning); false keeps Python's "
                            "defaults.")
    task_events: bool = Field(True, description="Celery task events (sent, received, started, "
                              "succeeded, failed) for Flower and `celery events`.")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="Longest request line and "
                                  "headers, in bytes.")
    max_headers: int = Field(100, ge=8, description="Most header lines in one request.")
    header_timeout: Duration = Field(10.0, gt=0, description="Longest time from a request's "
                                     "first byte to the end of its headers.")
    body_timeout: Duration = Field(30.0, gt=0, description="Longest time from the end of the "
                                   "headers to the end of the body.")
    step_snapshots: int = Field(
        4096, ge=0, le=1024 * 1024, description="Bytes of each step's output (the message "
        "after the step, secrets masked) kept in the run's timeline for the console and "
        "`flowrun runs show`; 0 keeps none. Retention's compaction drops them with the body.")
    # history (docs/retention.md); a flow's `retention:` block overrides the first three
    retention_runs: KeepFor = Field(Keep.runs, description="How long a finished run is kept "
                                    "after it finished: a duration ('14d') or 'forever'.")
    retention_bodies: KeepFor = Field(Keep.bodies, description="How long a finished run keeps its "
                                      "message (body, headers) before it is compacted to its "
                                      "summary; 'forever' (default): until the run goes.")
    retention_dead_letters: KeepFor = Field(Keep.dead_letters, description="How long a dead-letter "
                                            "entry is kept after it was replayed or discarded "
                                            "(open entries are always kept).")
    prune_interval: Duration = Field(3600.0, description="How often `flowrun serve` and "
                                     "`flowrun scheduler` remove what retention no longer keeps "
                                     "(0: only `flowrun prune`).")
    prune_batch: int = Field(500, ge=1, le=10_000, description="Records removed per "
                             "transaction while pruning.")
    prune_lease: Duration = Field(30.0, gt=0, description="How long the prune lock lasts "
                                  "without renewal: a pruning process that dies blocks the next "
                                  "pass (and `flowrun prune`) this long at most.")
    sla_interval: Duration = Field(15.0, description="How often `flowrun serve` and `flowrun "
                                   "scheduler` look for runs past their flow's SLA deadline "
                                   "(one process at a time; 0: only at finish).")
    serve_consume: bool = Field(False, description="`flowrun serve` also runs the consumers of "
                                "the flows' consume triggers (`--consume`); off so consumers "
                                "can be scaled apart from the webhook server.")
    otel: bool = Field(False, description="OpenTelemetry tracing: one trace per run, exported as "
                       "the standard OTEL_* variables say (docs/tracing.md). Needs "
                       "flowrunner-ipaas[otel].")

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            redis_url.parse(value)  # a Sentinel URL that cannot be used fails here, named
        return value

    @model_validator(mode="after")
    def _console_login(self) -> Settings:
        # half a login would leave the console silently closed (or, worse, guessable)
        if (self.console_user is None) != (self.console_password is None):
            raise ValueError("set FLOWRUN_CONSOLE_USER and FLOWRUN_CONSOLE_PASSWORD together")
        if (self.console_oidc_issuer is None) != (self.console_oidc_client_id is None):
            raise ValueError("set FLOWRUN_CONSOLE_OIDC_ISSUER and FLOWRUN_CONSOLE_OIDC_CLIENT_ID "
                             "together")
        if self.console_oidc_issuer and not self.console_oidc_roles:
            raise ValueError("FLOWRUN_CONSOLE_OIDC_ROLES is empty, so no one could log in: map "
                             "values of the role claim to roles, e.g. "
                             '{"flowrun-ops": "operator"}')
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def worker_ceiling(self) -> int:
        """The most embedded worker threads (``max_workers``, or its default)."""
        if self.max_workers is not None:
            return max(self.workers, self.max_workers)
        return 1 if self.workers == 1 else 8 * self.workers

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    def schemas_dir(self) -> Path:
        from engine.shipped import nearest_schemas

        return self.schemas if self.schemas is not None else nearest_schemas(self.flows)


def describe(exc: ValidationError) -> str:
    """Bad settings in one line, each by its variable: ``FLOWRUN_WORKERS: Input should be …``."""
    return "bad settings: " + "; ".join(
        f"FLOWRUN_{'_'.join(str(p) for p in e['loc']).upper()}: "
        f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})

"""Settings, read once at start-up from PVWATCH_* environment variables and CLI flags, then passed down."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Production defaults; the demo and the tests shorten the group session (see docs/operations.md)."""

    model_config = SettingsConfigDict(env_prefix="PVWATCH_", extra="ignore")

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    db: Path = Field(default=Path("var/pvwatch.duckdb"), description="DuckDB event store file.")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    group_id: str = "pvwatch-worker"
    partitions: int = Field(default=4, ge=1, description="Partitions per source topic; fixed once chosen.")
    # A JoinGroup waits half the session timeout on the embedded broker: 10 s in production is a 5 s join;
    # the demo and the tests use 4 s (about 4 s to ready). Heartbeat must be well under the session.
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    batch_max_events: int = Field(default=2000, ge=1, description="Events per store transaction at most.")
    batch_within_s: float = Field(default=0.02, gt=0, description="Longest wait to fill a batch (adds to latency).")
    alertmanager_url: str | None = Field(default=None, description="Alertmanager base URL for direct critical posts.")
    pseudonym_key: SecretStr | None = Field(default=None, description="Secret for patient pseudonyms (HMAC key).")
    demo_mode: bool = False
    snapshot_interval_s: float = Field(
        default=5.0, ge=0, description="How often the worker publishes the read-only snapshot (0: never)."
    )
    snapshot_path: Path | None = Field(default=None, description="Published snapshot; default <db>.snapshot.duckdb.")

    # Signal detection (issue 6; docs/signals.md): the worker recomputes the signals table over the store.
    signal_interval_s: float = Field(
        default=300.0, ge=0, description="How often the worker recomputes the signals table (0: never)."
    )
    signal_prr_min: float = Field(default=2.0, gt=0, description="PRR signal: PRR at least this (Evans 2001).")
    signal_chi2_min: float = Field(default=4.0, ge=0, description="PRR signal: Yates chi-square at least this.")
    signal_a_min: int = Field(default=3, ge=1, description="PRR signal: at least this many reports.")
    signal_eb05_min: float = Field(default=2.0, gt=0, description="EBGM signal: EB05 at least this (FDA).")
    signal_ic025_min: float = Field(default=0.0, description="IC signal: IC025 above this (Noren 2013).")
    signal_strengthen_ratio: float = Field(
        default=1.5, gt=1, description="A published signal is republished when PRR, EB05 or 2^IC025 grew this much."
    )
    # Poisson MaxSPRT on MSC infusions (Kulldorff 2011), checked at each signal recomputation; off without a term.
    maxsprt_term: str | None = Field(default=None, description="Adverse event term monitored after MSC infusions.")
    maxsprt_rate: float = Field(default=0.05, gt=0, description="Background cases of the term per infusion.")
    maxsprt_length: float = Field(default=10.0, gt=0, description="Surveillance length T in expected cases.")
    maxsprt_min_events: int = Field(default=4, ge=1, description="Cases needed before a signal (Kulldorff 2015).")
    maxsprt_alpha: float = Field(default=0.05, gt=0, lt=1, description="Type I error of the whole surveillance.")
    maxsprt_window_days: int = Field(default=1, ge=0, description="A case counts up to this many days after.")

    # Safety rules (issue 5; docs/rules.md): the officer's rules file and reference safety information.
    rules_file: Path | None = Field(default=None, description="Rules file (YAML); default: the packaged rules.yaml.")
    rsi_file: Path | None = Field(default=None, description="Reference safety information (YAML); default: rsi.yaml.")
    clock_interval_s: float = Field(
        default=60.0, gt=0, description="How often the worker re-evaluates expedited clocks (due-soon, overdue)."
    )
    # Live path speed (issue 5; streams/writer.py): the batch step in its own process, on another core than Faust.
    writer_process: bool = Field(
        default=True, description="Store writes and rules in a child process (false: in the worker, for debugging)."
    )

    @field_validator("alertmanager_url")
    @classmethod
    def _alertmanager_base_url(cls, url: str | None) -> str | None:
        """A typo here would silently leave people paged only by the slower Prometheus path: refuse it at start."""
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"expected Alertmanager's base URL, e.g. http://alertmanager:9093, got {url!r}")
        return url

    @property
    def snapshot_target(self) -> Path:
        return self.snapshot_path or self.db.with_name(self.db.name + ".snapshot.duckdb")

"""The server's settings, from `NAS_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from nas.paths import nas_home


class ServerSettings(BaseSettings):
    """Every setting has a `NAS_` variable: `NAS_API_TOKEN`, `NAS_DATABASE_URL`, ..."""

    model_config = SettingsConfigDict(env_prefix="NAS_", extra="ignore")

    api_token: SecretStr | None = Field(
        None, description="bearer token for every write (and reads with protect_reads)")
    protect_reads: bool = Field(False, description="reads need the token too")
    home: Path = Field(default_factory=nas_home, description="files: datasets, weights")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: home/nas.db")
    migrate: bool = Field(True, description="upgrade the database schema at start (the "
                          "compose file's one-shot `nas db upgrade` runs it instead)")
    max_running_searches: int = Field(2, ge=1, description="more are queued until a slot frees")
    runner: Literal["ray", "process"] = Field(
        "ray", description="searches run as Ray actors (a local Ray by default), or as `nas "
        "resume` processes on this machine")
    ray_address: str | None = Field(None, description="join this Ray cluster")
    dataset_roots: list[Path] = Field(
        default_factory=list, description="folders besides home/datasets that a search "
        "config's dataset.path may name")
    max_upload_mb: int = Field(512, ge=1, description="largest dataset archive accepted")
    max_budget_architectures: int | None = Field(
        None, ge=1, description="cap on a launched search's architecture budget")
    allowed_evaluators: list[str] | None = Field(
        None, description="evaluators a launched search may use (default: all)")

    @property
    def trains_from_scratch(self) -> bool:
        """Whether this server trains networks from scratch (`standalone` is allowed): zoo
        baselines and ENAS's `retrain_top` need it."""
        return self.allowed_evaluators is None or "standalone" in self.allowed_evaluators

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'nas.db'}"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    def token(self) -> str | None:
        """The API token; None (an open server) when unset or empty."""
        return (self.api_token.get_secret_value() or None) if self.api_token else None

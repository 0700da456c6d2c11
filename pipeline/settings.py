"""Project settings: paths and the sending organization, from `dunning.yaml` and the environment.

Environment variables win over the file so that Dagster resources (wired with
`EnvVar`) and CI can point the same code at other folders without editing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_OVERRIDES = {
    "data_dir": "DUNNING_DATA_DIR",
    "database": "DUNNING_DATABASE",
    "outbox": "DUNNING_OUTBOX",
    "policy_file": "DUNNING_POLICY_FILE",
    "templates": "DUNNING_TEMPLATES",
}


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    address_lines: list[str] = Field(default_factory=list)
    email: str
    iban: str
    bic: str
    bank: str


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    data_dir: Path
    database: Path
    outbox: Path
    policy_file: Path
    templates: Path
    render_workers: int = Field(default=2, ge=1, le=64)
    # DuckDB's memory limit: beyond it, large steps spill to disk instead of growing
    duckdb_memory_limit: str = Field(default="2.75GB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(MB|GB|MiB|GiB)$")
    organization: Organization

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides) -> "Settings":
        """Read `dunning.yaml` (or DUNNING_CONFIG), apply env overrides, then keyword overrides."""
        path = Path(config_file or os.environ.get("DUNNING_CONFIG") or PROJECT_ROOT / "dunning.yaml")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, env in ENV_OVERRIDES.items():
            if os.environ.get(env):
                data[key] = os.environ[env]
        data.update({k: v for k, v in overrides.items() if v is not None})
        for key in ENV_OVERRIDES:
            if key in data:
                p = Path(data[key])
                data[key] = p if p.is_absolute() else (path.parent / p).resolve()
        return cls.model_validate(data)

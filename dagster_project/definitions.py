"""Dagster entry point: the definitions found under `defs/`, plus the shared resource.

Each folder under `defs/` is one domain (ingest, dunning, reporting, alerts); the
resource is wired once here so every asset and sensor reads the same settings,
and the one partitions definition lives in `partitions.py`.
"""

from pathlib import Path

import dagster as dg

from dagster_project.resources import DunningResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources={"dunning": DunningResource()}),
    )

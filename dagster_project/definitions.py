"""Dagster entry point: the definitions found under `defs/`, plus the shared resource.

Each folder under `defs/` is one domain (ingest, dunning); the resource is
wired once here so every asset reads the same settings.
"""

import dagster as dg

from dagster_project import defs as defs_module
from dagster_project.resources import DunningResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_defs(defs_root=defs_module),
        dg.Definitions(resources={"dunning": DunningResource()}),
    )

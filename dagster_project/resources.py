"""The one resource every asset uses: where the settings come from.

Settings come from `dunning.yaml` (or the file named by DUNNING_CONFIG), with
DUNNING_DATABASE, DUNNING_DATA_DIR, DUNNING_OUTBOX, ... overriding single paths,
so a deployment points the same code elsewhere through its environment.
"""

from pathlib import Path

import dagster as dg

from pipeline.config.settings import Settings


class DunningResource(dg.ConfigurableResource):
    config_file: str = ""  # empty: DUNNING_CONFIG, else the project's dunning.yaml

    def settings(self) -> Settings:
        return Settings.load(Path(self.config_file) if self.config_file else None)

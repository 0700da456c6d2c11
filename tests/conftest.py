import os

# Tests never phone home and never touch the developer's Dagster instance.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

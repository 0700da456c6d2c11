import os

# Tests never phone home and never touch the developer's Dagster instance.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# pytest-xdist runs one test process per core: DuckDB's own threads would only compete with them
os.environ.setdefault("DUNNING_DUCKDB_THREADS", "1")

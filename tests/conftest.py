import os

# Tests never phone home and never touch the developer's Dagster instance.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# pytest-xdist runs one test process per core: DuckDB's own threads would only compete with them
os.environ.setdefault("DUNNING_DUCKDB_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Modules marked `slow` run first; otherwise the order is pytest's own.

    The suite runs on two workers (pytest-xdist, worksteal). A long module started last keeps one
    worker busy while the other has nothing left: started first, the other worker takes the short
    tests meanwhile and both finish together. Whole modules move, so their fixtures are built once.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the slow modules first, each in its own order

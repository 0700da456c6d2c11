import os

# Tests never phone home and never touch the developer's Dagster instance.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# pytest-xdist runs one test process per core: DuckDB's own threads would only compete with them
os.environ.setdefault("DUNNING_DUCKDB_THREADS", "1")


# A slow module's rough cost in seconds on two workers, when its marker gives none (`slow(seconds)`).
SLOW_DEFAULT_SECONDS = 60


def pytest_collection_modifyitems(config, items):
    """Each worker starts with its share of the modules marked `slow`; otherwise the order is pytest's own.

    pytest-xdist's worksteal hands each of its N workers one contiguous run of the collection first
    (the i-th of N: what is left divided by the workers left) and an idle worker later steals the
    tail of the longest queue. A long module started last keeps one worker busy while the others have
    nothing left. So the slow modules, whole (their fixtures are built once), are dealt to the N runs
    longest first by their rough cost (`pytest.mark.slow(seconds)`), each run then filled up with the
    short tests. (Sorted to the front instead, they all fell in the first worker's run, one after the
    other: the suite's wall time was about that worker's.)
    """
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    modules: dict[str, list] = {}
    fast = []
    for item in items:
        if item.get_closest_marker("slow") is None:
            fast.append(item)
        else:
            modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def cost(module: str) -> float:
        marker = modules[module][0].get_closest_marker("slow")
        return float(marker.args[0]) if marker.args else SLOW_DEFAULT_SECONDS

    runs: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for module in sorted(modules, key=lambda m: (-cost(m), m)):
        k = load.index(min(load))
        runs[k] += modules[module]
        load[k] += cost(module)
    order, left = [], len(items)
    for k, run in enumerate(runs):
        size = left // (workers - k)  # what worksteal sends the k-th idle worker first
        take = max(0, size - len(run))
        order += run + fast[:take]
        fast = fast[take:]
        left -= len(run) + take
    items[:] = order + fast

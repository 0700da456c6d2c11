"""`python -m dagster_project.dev [dg dev options]`: the Dagster UI for this project (`make dagster`).

It runs `dg dev` (the current command; `dagster dev` is superseded by it) in the
project folder, after four things `dg dev` alone gets wrong here:

- Signals: `dagster dev` makes SIGTERM do whatever SIGINT does, and a process
  started in the background (a service manager, `make dagster &`, a test)
  inherits SIGINT *ignored*, so both were ignored and the UI could only be
  killed. Both are set to stop it (KeyboardInterrupt: it shuts the webserver,
  the daemon and the code server down in order) before anything else.
- DAGSTER_HOME: `var/dagster_home` unless set, with this project's instance
  settings (`dagster_project/dagster.yaml`: no telemetry, one DuckDB step at a
  time) copied in when it has none.
- VIRTUAL_ENV: this interpreter's environment (dg warns when the active one is not
  the project's, which is always the case when nothing was activated).
- History: the days the command line computed (`make demo`) are recorded as
  materializations first (`dagster_project.history`), so the graph is filled when
  the page opens; the sensor `days_run_outside_dagster` keeps it so.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTANCE_SETTINGS = Path(__file__).with_name("dagster.yaml")


def stop_on_signals() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def prepare_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "var" / "dagster_home"))).absolute()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_SETTINGS, home / "dagster.yaml")
    return home


def record_history() -> None:
    import dagster as dg

    from dagster_project.history import record_outside_runs
    from pipeline.config.settings import Settings

    try:
        settings = Settings.load()
    except Exception as exc:  # the UI still starts; the assets will report the settings error
        print(f"dunning settings not readable ({exc}); no history recorded", flush=True)
        return
    with dg.DagsterInstance.get() as instance:
        days = record_outside_runs(instance, settings)
    if days:
        print(f"recorded {days} day(s) computed outside Dagster (run log of {settings.analyst_dir})", flush=True)


def main(argv: list[str] | None = None) -> None:
    stop_on_signals()
    prepare_home()
    os.environ.setdefault("VIRTUAL_ENV", sys.prefix)
    try:
        record_history()
        os.chdir(PROJECT_ROOT)
        from dagster_dg_cli.cli import cli

        cli.main(args=["dev", *(sys.argv[1:] if argv is None else argv)], prog_name="dg")
    except KeyboardInterrupt:  # a signal before the services started: nothing to shut down
        sys.exit(130)


if __name__ == "__main__":
    main()

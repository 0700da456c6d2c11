"""The dunning library: no Dagster import, callable from a notebook or a test.

Where things live (one folder per role; the rules themselves are SQL in `sql/`):
- `config/`: settings (`dunning.yaml`), the policy file's model and diff, the input tables.
- `warehouse/`: DuckDB: ingestion, the model runner, the persistent state (DDL in
  `sql/schema/`), ledger rules (`sql/seeds/`), work schemas, the analysts' objects.
- `engine/`: the daily step and its run modes: live (plan -> dispatch -> publish),
  backfill, simulate.
- `delivery/`: rendering, channels, the outbox and the dispatch journal, previews.
- `reporting/`: explain, the daily report, summaries, the analysts' published copy.
- `failed_collections/`: the failed-collection steps' policy model and reference codes.
- `scenarios/`: policy scenarios run through the real pipeline.
- `durable_files.py`: atomic, fsynced file writes (outbox, print batches, reports, analyst copy).
- `cli.py`: the `dunning` command.
"""

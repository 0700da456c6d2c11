"""The DuckDB side: ingestion, the SQL model runner, the persistent state and its DDL, ledger rules, work schemas, the analysts' objects."""

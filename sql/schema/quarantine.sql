-- Rows that failed validation, with file, row, column and the rule they broke (pipeline/warehouse/ingest.py).
create table if not exists quarantine (
    table_name varchar not null, source_file varchar not null, source_row bigint not null,
    rule varchar not null, column_name varchar, value varchar, message varchar not null,
    record json)

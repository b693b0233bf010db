"""Hot and cold history: option snapshots compacted to Parquet, queried with DuckDB across both
tiers, retention of the operational tables, and what the storage costs (docs/design.md)."""

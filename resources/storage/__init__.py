"""Storage engines: the Parquet lake, the landing log, the tiers, the warehouses and their readers."""

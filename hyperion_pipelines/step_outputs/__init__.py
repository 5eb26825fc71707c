"""Step outputs as columnar files: DataFrames between pipeline steps, in Parquet."""

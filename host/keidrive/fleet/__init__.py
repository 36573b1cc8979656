"""``keidrive fleet``: many whole drives at once on a Dask cluster, every trip
into DuckDB.

Modules: ``inputs`` (the drives a command line asks for, checked before
any cluster starts), ``tasks`` (what one drive is and how a worker runs it:
the library behind ``keidrive run`` and ``keidrive replay``), ``cluster`` (the
local or remote Dask cluster and the job array over it), ``store`` (the
DuckDB schema, appends per run, Parquet export), ``report`` (summary per
vehicle and profile, comparison of two runs, plot).
"""

# Dask and DuckDB are the ``fleet`` extra, not core dependencies.
INSTALL_HINT = "pip install 'keidrive[fleet]' (dask[distributed] and duckdb)"

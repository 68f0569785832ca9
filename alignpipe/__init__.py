"""alignpipe: the Snakemake pipeline's glue around alignlib (config, job sizing, NetCDF I/O,
logging, figures, the report). It imports alignlib; alignlib never imports it."""

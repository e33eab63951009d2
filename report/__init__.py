"""The report: run directories (config.yaml and TensorBoard events) in, tables, targets and plots
out. It reads run files and imports nothing that trains.

``python -m report.compare DIR... --out OUT`` (or ``python -m report``) is the command line. Its
parts, each importing only those before it: records (the record types, a leaf), thresholds,
runs (loading), stats, targets, plots, write (markdown, JSON, CSV, PNGs), compare (the CLI).
"""

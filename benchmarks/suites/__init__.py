"""What ``python -m benchmarks.suite`` runs on: a suite's config (config.py), its cells and their
status (cells.py), and the lock file each cell takes while it trains (locks.py)."""

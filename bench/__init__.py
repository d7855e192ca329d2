"""Benchmarks of paper_repro (scripts, not timed tests): each writes `results/bench/<name>.parquet`.

Run from the checkout root as `python bench/<name>.py ...` (or `python -m bench.<name> ...`); every script
takes `--help`. `python -m paper_repro.analysis.readme_tables README.md` turns the parquet into README tables.
"""

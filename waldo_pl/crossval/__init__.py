"""Cross-validation's results: each run's held-out answers (its metrics.json), per fold and pooled.

runs.py       the runs under a folder: their configs, folds, seeds and pages
rescore.py    the held-out pages searched again by each run's last checkpoint, with other search settings
calibrate.py  Platt scaling of the confidence fitted on held-out answers, written, and applied to others
table.py      the fold table
cli.py        waldo-crossval (python -m waldo_pl.crossval)
"""

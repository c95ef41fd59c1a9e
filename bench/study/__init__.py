"""The accuracy study: teacher, the paper's KD ablation over seeds, per-level ablation, report.

`python -m bench.study --scale cpu --out runs/study` writes docs/results.md.
"""

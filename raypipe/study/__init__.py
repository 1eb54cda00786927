"""Studies: one YAML file runs every arm of an ablation table (a base pipeline plus small
overrides per arm), shares the steps the arms have in common, and reports raypipe's figures
beside the paper's with confidence intervals and paired tests. See docs/study.md.

- `spec`: load a study file, expand it into per-arm steps (pure; no Ray).
- `runner`: run the arms (step records for resume and sharing).
- `stats`: Wilson intervals, McNemar's exact test, the paired bootstrap (pure Python).
- `report`: `raypipe report --study DIR`.
"""

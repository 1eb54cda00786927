"""Evaluation: BFCL loader, decoders and AST checker, scoring reports, judge, pass^k.

Modules import lazily; see `raypipe.eval.scoring.score_results` for BFCL scoring.
"""

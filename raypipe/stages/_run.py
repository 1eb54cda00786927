"""Running a configured stage (its config's `out` and run options) with the one executor."""

from __future__ import annotations

from typing import Any


def run_configured(stage, **kwargs) -> dict[str, Any]:
    from raypipe.llm.executor import run_stage

    cfg = stage.config
    return run_stage(stage, out=cfg.out, dry_run=getattr(cfg, "dry_run", False),
                     retry_rejects=getattr(cfg, "retry_rejects", False),
                     allow_incomplete=getattr(cfg, "allow_incomplete", False), **kwargs)

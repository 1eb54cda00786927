"""The run manifest every evaluation output carries: what exactly produced these numbers.

    {"created_at", "raypipe", "kind", "datasets": [{"path", "sha256", "bytes"}], "scorer",
     "template", "system_prompt_sha256", "model", "adapter", "endpoint", "sampling", "seeds",
     "versions": {python, ray, vllm, transformers, torch, peft, openai}, "hardware": {...}}

Versions are read from package metadata (nothing heavy is imported for them). The endpoint is
written without credentials: user-info and query strings are dropped, and the API key itself is
never an input here (only the name of its environment variable may be recorded by callers).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from typing import Any, Iterable

MANIFEST_NAME = "manifest.json"
PACKAGES = ("ray", "vllm", "transformers", "torch", "peft", "deepspeed", "openai", "pyarrow")


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "system": platform.system(),
                            "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # only when the run already loaded it
    if torch is not None:
        try:
            if torch.cuda.is_available():
                info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # a broken CUDA set-up must not stop the manifest
            info["gpus"] = "unknown"
    return info


def public_endpoint(url: str | None) -> str | None:
    """`url` without user-info, query or fragment (where keys sometimes hide)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def dataset_entries(paths: Iterable[str]) -> list[dict[str, Any]]:
    """sha256 and size of every file named (folders and globs expanded)."""
    from raypipe.io import fs
    from raypipe.io.dataset import expand_inputs

    entries = []
    for path in sorted(set(expand_inputs(list(paths), allow_incomplete=True))) if paths else []:
        entries.append({"path": path, "sha256": fs.sha256(path), "bytes": fs.stat(path)[0]})
    return entries


def run_manifest(*, kind: str, datasets: Iterable[str] = (), scorer: str | None = None,
                 template: Any = None, system_prompt: str | None = None, model: str | None = None,
                 adapter: str | None = None, endpoint: str | None = None,
                 sampling: dict[str, Any] | None = None, seeds: Any = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from raypipe import __version__

    return {
        "kind": kind,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "raypipe": __version__,
        "datasets": dataset_entries(list(datasets)),
        "scorer": scorer,
        "template": template,
        "system_prompt_sha256": (hashlib.sha256(system_prompt.encode("utf-8")).hexdigest()
                                 if system_prompt is not None else None),
        "model": model,
        "adapter": adapter,
        "endpoint": public_endpoint(endpoint),
        "sampling": sampling or {},
        "seeds": seeds,
        "versions": package_versions(),
        "hardware": hardware(),
        **(extra or {}),
    }


def write_manifest(out_dir: str, manifest: dict[str, Any]) -> str:
    from raypipe.io import fs

    path = fs.join(out_dir, MANIFEST_NAME)
    fs.write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
    return path

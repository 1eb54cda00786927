"""`fetch_hf` job step: copy a Hugging Face Hub dataset to a local folder, by name.

The paper's sources (OpenOrca, Salesforce/xlam-function-calling-60k,
glaiveai/glaive-function-calling-v2) are read by `convert` from local files; this step puts
them there with the Hub's own code (`datasets.load_dataset(...).save_to_disk`, a layout
`convert` reads; or `huggingface_hub.snapshot_download` for repositories of plain files). It
needs the optional `hub` extra and the network; with a local copy already in `out` it does
nothing, so a study's full scale runs offline once the data is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raypipe.config import output_path
from raypipe.registry import Step

DONE = ".fetched"  # written last: a folder without it is an interrupted copy and is fetched again


@dataclass
class FetchHfConfig:
    dataset: str  # Hub repository id, e.g. Salesforce/xlam-function-calling-60k
    out: str = output_path()
    split: str = "train"  # `datasets` split expression, e.g. "train[:110000]"
    revision: str | None = None
    snapshot: bool = False  # copy the repository's files instead of loading it with `datasets`
    allow_patterns: list[str] | None = None  # snapshot only: which files

    def __post_init__(self) -> None:
        if self.dataset.count("/") != 1:
            raise ValueError(f"dataset: expected a Hub id OWNER/NAME, got {self.dataset!r}")


def fetch_hf(cfg: FetchHfConfig) -> dict:
    from raypipe.errors import MissingExtraError

    out = Path(cfg.out)
    if (out / DONE).exists():
        return {"out": cfg.out, "fetched": False, "reason": "already here"}
    if cfg.snapshot:
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise MissingExtraError("huggingface_hub", "hub") from None
        snapshot_download(cfg.dataset, repo_type="dataset", revision=cfg.revision, local_dir=str(out),
                          allow_patterns=cfg.allow_patterns)
    else:
        try:
            import datasets
        except ImportError:
            raise MissingExtraError("datasets", "hub") from None
        ds = datasets.load_dataset(cfg.dataset, split=cfg.split, revision=cfg.revision)
        ds.save_to_disk(str(out))
    (out / DONE).write_text(f"{cfg.dataset} {cfg.split} {cfg.revision or ''}\n", encoding="utf-8")
    return {"out": cfg.out, "fetched": True}


def _step(cfg: FetchHfConfig, job) -> dict:
    return fetch_hf(cfg)


STEPS = [Step(kind="fetch_hf", config=FetchHfConfig, run=_step,
              help="copy a Hugging Face Hub dataset to a local folder (optional `hub` extra)")]

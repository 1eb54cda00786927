"""Training metrics: throughput, MFU estimate, loss curves (JSON + PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Dense bf16 peak per device (TFLOP/s, no sparsity), from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def gpu_peak_tflops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops
    return None


def mfu(tokens_per_s: float, num_params: int, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation with the usual 6 x params FLOPs per trained token.

    With LoRA the frozen base computes no weight gradients (closer to 4 x params), so this
    is the figure comparable with full fine-tuning reports, an upper estimate of work done.
    """
    if not peak_tflops:
        return None
    return 6.0 * num_params * tokens_per_s / (peak_tflops * 1e12)


def write_curves(history: list[dict[str, Any]], sources: list[dict[str, Any]], out_dir: str | Path) -> dict[str, str]:
    """metrics.json (every step, every per-source report) and loss.png drawn from it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps({"steps": history, "source_loss": sources}, indent=1))
    plot_path = out / "loss.png"
    plot_loss(history, sources, plot_path)
    return {"metrics": str(metrics_path), "plot": str(plot_path)}


def plot_loss(history: list[dict[str, Any]], sources: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", lw=1)
    labels = sorted({k for s in sources for k in s["loss"]})
    for label in labels:
        pts = [(s["step"], s["loss"][label]) for s in sources if label in s["loss"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1, label=f"{label}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per trained token")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

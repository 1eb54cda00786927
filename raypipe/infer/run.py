"""Pick a backend and stream generated rows back to the caller.

`generate` yields rows as Ray Data finishes them (streaming execution), so a caller can
append each one to disk at once: an interrupted run keeps everything already generated.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from raypipe.errors import MissingExtraError, RaypipeError
from raypipe.infer.config import GenerationConfig
from raypipe.infer.vllm_stage import build_vllm_processor, to_output_row, vllm_available


def choose_backend(requested: str, *, vllm_installed: bool, cluster_gpus: float) -> str:
    """`auto` picks vLLM only when it is installed and the cluster has GPUs."""
    if requested == "transformers":
        return "transformers"
    if requested == "vllm":
        if not vllm_installed:
            raise MissingExtraError("vllm", "vllm")
        if cluster_gpus <= 0:
            raise RaypipeError("backend 'vllm' needs GPUs, but the Ray cluster reports none")
        return "vllm"
    if requested != "auto":
        raise RaypipeError(f"unknown backend {requested!r} (auto, vllm, transformers)")
    return "vllm" if vllm_installed and cluster_gpus > 0 else "transformers"


def generate(rows: list[dict[str, Any]], cfg: GenerationConfig) -> Iterator[dict[str, Any]]:
    """Generate for `rows` (each with `id` and `prompt`); yields output rows in any order."""
    import ray

    if not rows:
        return
    backend = choose_backend(
        cfg.backend,
        vllm_installed=vllm_available(),
        cluster_gpus=float(ray.cluster_resources().get("GPU", 0)),
    )
    # Similar lengths side by side: a left-padded batch costs as much as its longest prompt.
    ds = ray.data.from_items(sorted(rows, key=lambda r: len(r["prompt"])))
    if backend == "vllm":
        ds = build_vllm_processor(cfg)(ds)
    else:
        from raypipe.infer.hf_stage import TransformersGenerateStage

        ds = ds.map_batches(
            TransformersGenerateStage,
            fn_constructor_kwargs=dict(
                model=cfg.model,
                adapter=cfg.adapter,
                max_new_tokens=cfg.max_new_tokens,
                stop=list(cfg.stop),
                dtype=cfg.dtype,
                continue_on_error=cfg.continue_on_error,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=cfg.seed,
            ),
            batch_size=cfg.batch_size,
            compute=ray.data.ActorPoolStrategy(size=cfg.replicas),
            num_cpus=cfg.cpus_per_replica,
        )
    yield from _rows(ds.iter_rows())


def _rows(it: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in it:
        row = dict(row)
        if "__inference_error__" in row:  # vLLM error rows skip the postprocess function
            row = to_output_row(row)
        yield {k: _plain(v) for k, v in row.items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars/arrays from Ray Data blocks
        return value.tolist()
    return value

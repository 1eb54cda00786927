"""LoRA fine-tuning recipes on Ray Train + DeepSpeed.

One readable training function per method, each runnable under Ray Train's `TorchTrainer`
(N workers, CPUs or GPUs) and alone in one process:

- `raypipe.train.sft.sft_loop`: supervised fine-tuning (the seed paper's recipe).
- `raypipe.train.mdpo.mdpo_loop`: MAGNET's multi-turn DPO.

`raypipe.train.launch.run_training` is the driver side both share (data, Ray Train or
in-process, export, metrics). Nothing here is imported by `import raypipe`.
"""

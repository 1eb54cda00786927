"""Reading, converting and writing samples (local paths or any pyarrow filesystem URI).

- `read_sample_file(path)`: canonical JSONL/Parquet -> Samples (bad rows raise with file:line).
- `iter_samples(paths)`: the same over files, globs and dataset folders.
- `read_samples(paths_or_globs)`: a Ray Dataset of sample rows.
- `write_samples(ds_or_samples, out_dir, rejects=..., summary_extra=...)`: Parquet shards,
  rejects and `summary.json`.
- `convert_files(inputs, format, out_dir)`: source formats -> canonical samples + rejects.
"""

from raypipe.io.convert import convert_file, convert_files, convert_sources, get_format
from raypipe.io.readers import iter_samples, read_sample_file, read_samples
from raypipe.io.writers import SampleWriter, make_reject, rejects_schema, write_samples

__all__ = [
    "SampleWriter", "convert_file", "convert_files", "convert_sources", "get_format", "iter_samples", "make_reject",
    "read_sample_file", "read_samples", "rejects_schema", "write_samples",
]

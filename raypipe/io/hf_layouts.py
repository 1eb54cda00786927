"""Hugging Face layouts of source data, read without the `datasets` library.

- Folders of the trainers' layouts (and `raypipe export`'s): LLaMA-Factory's
  ``dataset_info.json`` and export.json are descriptions, not records.
- A `datasets` ``save_to_disk`` folder: ``state.json`` lists the data files (Arrow IPC stream
  files ``data-0000k-of-0000n.arrow``) next to ``dataset_info.json``; a DatasetDict has one such
  folder per split under ``dataset_dict.json``. The Arrow files are the records; the JSON
  metadata files are not.
- Parquet or Arrow with nested columns (``datasets.Dataset.from_list`` of OpenAI-style rows):
  Arrow gives every row every key any row has (the schemas of all rows are merged), so a
  function spec gets ``null`` for the properties of other functions and a call gets ``null`` for
  the arguments of other calls. `drop_arrow_nulls` removes those after conversion: every null in
  a function spec (a JSON schema has no null keywords) and a null argument the function does not
  declare, or declares as optional and not nullable. Nulls the data really holds (a nullable
  argument, message fields) stay, and the validator judges what remains.
  (JSON-string columns, the other common layout, are decoded by the formats themselves.)
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from raypipe.io import fs
from raypipe.io.records import Record, iter_records
from raypipe.schema import Sample
from raypipe.validate import function_name, function_parameters

SOURCE_EXTENSIONS = (".json", ".jsonl", ".parquet", ".arrow")
DATASETS_METADATA = ("state.json", "dataset_info.json", "dataset_dict.json", "export.json")


def expand_source_files(inputs: list[str], *, allow_incomplete: bool = False) -> list[str]:
    """Input files of a conversion: `expand_inputs` over the source extensions, with each
    save_to_disk folder reduced to the data files its ``state.json`` lists."""
    from raypipe.io.dataset import expand_inputs

    files = expand_inputs(inputs, extensions=SOURCE_EXTENSIONS, allow_incomplete=allow_incomplete)
    listed: dict[str, set[str]] = {}  # save_to_disk folder -> its data files
    metadata: set[str] = set()
    for f in files:
        folder, name = _split(f)
        if name not in DATASETS_METADATA:
            continue
        try:
            doc = json.loads(fs.read_text(f))
        except ValueError:
            continue
        if name == "state.json" and isinstance(doc, dict) and isinstance(doc.get("_data_files"), list):
            listed[folder] = {str(d.get("filename")) for d in doc["_data_files"] if isinstance(d, dict)}
            metadata.add(f)
        elif name == "dataset_dict.json" and isinstance(doc, dict) and isinstance(doc.get("splits"), list):
            metadata.add(f)
        elif name == "dataset_info.json" and isinstance(doc, dict) and doc and all(
                isinstance(v, dict) and ("file_name" in v or "hf_hub_url" in v) for v in doc.values()):
            metadata.add(f)  # LLaMA-Factory's dataset registry (a `raypipe export` folder has one)
        elif name == "export.json" and isinstance(doc, dict) and "snippets" in doc and "to" in doc:
            metadata.add(f)  # the summary `raypipe export` writes
    out = []
    for f in files:
        folder, name = _split(f)
        if f in metadata or (name == "dataset_info.json" and folder in listed):
            continue  # the dataset's description, not records
        if folder in listed and name.endswith(".arrow") and name not in listed[folder]:
            continue  # a cache file of `datasets`, not part of the saved dataset
        out.append(f)
    return out


def _split(path: str) -> tuple[str, str]:
    path = path.replace("\\", "/")
    return path.rsplit("/", 1) if "/" in path else ("", path)


# Top-level columns whose nested structs hold function specs, and those holding call arguments.
SPEC_COLUMNS = ("tools", "functions", "function")
CALL_COLUMNS = ("messages", "conversations", "answers")


def iter_source_records(path: str) -> tuple[Iterator[Record], set[str]]:
    """(records of one source file, the names of its columns with nested structs, whose merged
    schema may have added nulls; empty for JSON)."""
    if path.endswith(".arrow"):
        schema, batches = _arrow_batches(path)
        return _rows(batches), _nested(schema)
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        filesystem, inner = fs.resolve(path)
        try:
            with filesystem.open_input_file(inner) as f:
                schema = pq.read_schema(f)
        except (pa.ArrowException, OSError):  # a damaged file: iter_records says why, row by row
            return iter_records(path), set()
        return iter_records(path), _nested(schema)
    return iter_records(path), set()


def _arrow_batches(path: str):
    import pyarrow as pa

    filesystem, inner = fs.resolve(path)
    try:
        with filesystem.open_input_stream(inner) as f:  # datasets writes the IPC stream format
            reader = pa.ipc.open_stream(f)
            return reader.schema, list(reader)
    except pa.ArrowInvalid:
        with filesystem.open_input_file(inner) as f:  # ... but a plain Arrow file is one too
            reader = pa.ipc.open_file(f)
            return reader.schema, [reader.get_batch(i) for i in range(reader.num_record_batches)]


def _rows(batches) -> Iterator[Record]:
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            yield Record(n, json.dumps(row, ensure_ascii=False, default=str), value=row)


def _nested(schema) -> bool:
    import pyarrow as pa

    def has_struct(t) -> bool:
        if pa.types.is_struct(t):
            return True
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return has_struct(t.value_type)
        return False

    return {field.name for field in schema if has_struct(field.type)}


def drop_arrow_nulls(sample: Sample, nested_columns: set[str]) -> int:
    """Remove the nulls an Arrow schema merge added to `sample`, read from a file whose
    `nested_columns` are struct-typed (see the module doc); returns how many were removed."""
    dropped = 0
    if nested_columns & set(SPEC_COLUMNS):
        for i, spec in enumerate(sample.functions):
            sample.functions[i], n = _without_nulls(spec)
            dropped += n
    if nested_columns & set(CALL_COLUMNS):
        specs = {function_name(f): function_parameters(f) for f in sample.functions}
        for message in sample.messages:
            for call in message.tool_calls:
                if call.name in specs:
                    dropped += _drop_null_arguments(call.arguments, specs[call.name])
    if dropped:
        sample.id = ""
        sample.__post_init__()  # the content changed: a fresh content id
    return dropped


def _without_nulls(value: Any) -> tuple[Any, int]:
    if isinstance(value, dict):
        out, dropped = {}, 0
        for k, v in value.items():
            if v is None:
                dropped += 1
                continue
            out[k], n = _without_nulls(v)
            dropped += n
        return out, dropped
    if isinstance(value, list):
        items = [_without_nulls(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def _drop_null_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> int:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    dropped = 0
    for key in list(arguments):
        value, prop = arguments[key], props.get(key)
        if value is None:
            if prop is None or (key not in required and not _allows_null(prop)):
                del arguments[key]
                dropped += 1
        elif isinstance(value, dict) and isinstance(prop, dict) and isinstance(prop.get("properties"), dict):
            dropped += _drop_null_arguments(value, prop)
    return dropped


def _allows_null(schema: dict[str, Any]) -> bool:
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    if "null" in types or schema.get("nullable") is True or None in (schema.get("enum") or [0]):
        return True
    return any(_allows_null(s) for key in ("anyOf", "oneOf") for s in schema.get(key) or [] if isinstance(s, dict))

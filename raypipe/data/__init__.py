"""Sample data shipped with raypipe: a tool pool, canonical samples and the same kind of data
in each supported source format (for the quickstart job, tests and demos).

- `TOOLS_JSON`: 25 JSON-schema function specs over travel, finance, weather, math, calendar,
  email, maps, shopping, health, units, translation and news. Specs that produce data other
  tools can consume carry a `returns` schema (e.g. get_airport_code -> search_flights).
- `SAMPLES_JSONL`: 40 canonical function-calling samples (`Sample.to_dict()` per line): single,
  parallel and multi-step calls, multi-turn dialogs, direct answers; 6 in Traditional Chinese.
  `meta.kind` says which.
- `IF_JSONL`: 15 instruction-following samples (no functions), 4 in Traditional Chinese.
- `SOURCES_DIR`: small files in each source format `raypipe convert` reads.
- `BFCL_MINI_DIR`: a hand-made BFCL test set in the V1 / zh-TW layout (`en/`, `zhtw/`,
  `possible_answer/`), 4 items per category over the functions of `TOOLS_JSON`, so evaluation
  runs without the real benchmark (`load_bfcl(BFCL_MINI_DIR, "zhtw")`).
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SAMPLES_JSONL = DATA_DIR / "samples.jsonl"
TOOLS_JSON = DATA_DIR / "tools.json"
IF_JSONL = DATA_DIR / "if.jsonl"
SOURCES_DIR = DATA_DIR / "sources"
BFCL_MINI_DIR = DATA_DIR / "bfcl_mini"

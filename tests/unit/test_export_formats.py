"""`raypipe export --to openai|sharegpt|llamafactory`: the consumers' documented layouts, and a round
trip through `raypipe convert` that loses nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raypipe.data import IF_JSONL, SAMPLES_JSONL
from raypipe.errors import RaypipeError
from raypipe.io import convert_files, iter_samples
from raypipe.io.export import export_samples
from raypipe.schema import Lineage, Message, Sample, ToolCall
from raypipe.templates import render
from raypipe.templates.jinja import chat_template

pytestmark = pytest.mark.unit

GOLDEN_EXTRA = Path(__file__).resolve().parents[1] / "golden" / "templates" / "extra_samples.jsonl"
CONVERT_FROM = {"openai": "openai", "sharegpt": "sharegpt", "llamafactory": "sharegpt"}


def edge_samples() -> list[Sample]:
    spec = {"name": "w.get", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    return [
        # content next to parallel calls, reasoning, results with and without ids, lineage, meta
        Sample(functions=[spec], source="mine", lang="zh-TW", meta={"k": [1, {"x": None}], "parallel_tool_calls": True},
               lineage=[Lineage("translate", "abc")], messages=[
                   Message("system", "Be brief."), Message("user", "兩個城市的天氣？"),
                   Message("assistant", "查一下。", reasoning="需要兩次呼叫。", tool_calls=[
                       ToolCall("w.get", {"city": "台北"}, id="call_a"), ToolCall("w.get", {"city": "東京"}, id="call_b")]),
                   Message("tool", '{"t": 30}', name="w.get", tool_call_id="call_a"),
                   Message("tool", "not json", name="w.get", tool_call_id="call_b"),
                   Message("assistant", "30 度。")]),
        # calls without ids (OpenAI needs ids: made up on export, dropped on the way back)
        Sample(functions=[spec], messages=[Message("user", "Weather?"),
                                           Message("assistant", None, tool_calls=[ToolCall("w.get", {"city": "x"})]),
                                           Message("tool", None, name="w.get"), Message("assistant", "")]),
        # a prompt without an answer (BFCL-like), two users in a row, a late system message
        Sample(functions=[], messages=[Message("user", "a"), Message("user", "b"), Message("system", "late")]),
    ]


def all_samples() -> list[Sample]:
    shipped = [Sample.from_dict(json.loads(line)) for path in (SAMPLES_JSONL, IF_JSONL, GOLDEN_EXTRA)
               for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return shipped + edge_samples()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "samples.jsonl"
    path.write_text("".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in all_samples()), encoding="utf-8")
    return path


@pytest.mark.parametrize("to", ["openai", "sharegpt", "llamafactory"])
def test_export_round_trips_through_convert_with_nothing_lost(tmp_path, source, to):
    summary = export_samples([str(source)], str(tmp_path / "out"), to, log=lambda m: None)
    assert summary["rows"] == len(all_samples())
    # the export folder itself is what convert reads (its snippets and export.json are not records)
    report = convert_files([str(tmp_path / "out")], CONVERT_FROM[to], str(tmp_path / "back"), log=lambda m: None)
    back = list(iter_samples(str(tmp_path / "back")))
    bad = report.rejects_preview
    want = all_samples()
    valid_back = {s.id: s.to_dict() for s in back}
    # every sample that passes validation comes back identical: id, source, lang, meta, lineage, content
    for s in want:
        if s.id in valid_back:
            assert valid_back[s.id] == s.to_dict(), s.id
    assert len(back) + len(bad) == len(want)
    assert all("invalid" in r["reason"] for r in bad)  # only what the validator refuses (e.g. a prompt-only sample)
    assert {s.id for s in back} == {s.id for s in want} - {r["id"] for r in bad}


def test_round_trip_is_exact_without_validation_too(tmp_path, source):
    from raypipe.io import convert_file, get_format

    for to in ("openai", "sharegpt"):
        export_samples([str(source)], str(tmp_path / to), to, log=lambda m: None)
        data = next((tmp_path / to).glob("raypipe.json*"))
        back = [s for s, _ in convert_file(str(data), get_format(CONVERT_FROM[to]), validate=False)]
        assert [s.to_dict() for s in back] == [s.to_dict() for s in all_samples()]


def test_natively_expressible_samples_need_no_patch(tmp_path, source):
    for to, most in (("openai", 2), ("sharegpt", 6)):
        export_samples([str(source)], str(tmp_path / to), to, log=lambda m: None)
        rows = [json.loads(line) for line in (tmp_path / to / "raypipe.jsonl").read_text().splitlines()]
        patched = [r for r in rows if {"messages", "functions"} & set(json.loads(r["raypipe"]))]
        # only what the layout cannot say: a wrapped spec, a tool result that is null (OpenAI wants a
        # string), reasoning or content beside calls and consecutive user turns (ShareGPT)
        assert len(patched) <= most, [json.loads(r["raypipe"])["id"] for r in patched]


# -- the consumers' layouts --------------------------------------------------------------------


def test_openai_rows_follow_the_fine_tuning_format(tmp_path, source):
    export_samples([str(source)], str(tmp_path / "o"), "openai", log=lambda m: None)
    for line in (tmp_path / "o" / "raypipe.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert set(row) <= {"messages", "tools", "parallel_tool_calls", "raypipe"}
        ids = set()
        for m in row["messages"]:
            assert m["role"] in ("system", "user", "assistant", "tool")
            assert "content" in m and (m["content"] is None or isinstance(m["content"], str))
            for c in m.get("tool_calls", []):
                assert c["type"] == "function" and c["id"] and isinstance(c["function"]["arguments"], str)
                assert isinstance(json.loads(c["function"]["arguments"]), dict)
                ids.add(c["id"])
            if m["role"] == "tool":
                assert m["tool_call_id"] in ids and isinstance(m["content"], str)
        for t in row.get("tools", []):
            assert t["type"] == "function" and isinstance(t["function"]["name"], str)


def test_trl_renders_the_openai_rows_exactly_as_raypipe_renders_the_samples(tmp_path, source):
    """TRL's SFTTrainer calls tokenizer.apply_chat_template(example["messages"], tools=example["tools"])."""
    from raypipe.tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer(["hello"] * 3, vocab_size=280)
    export_samples([str(source)], str(tmp_path / "o"), "openai", log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "o" / "raypipe.jsonl").read_text().splitlines()]
    loaders = {"json": rows}
    try:
        import datasets

        loaded = datasets.load_dataset("json", data_files=str(tmp_path / "o" / "raypipe.jsonl"), split="train")
        loaders["datasets"] = list(loaded)  # Arrow merges the tools' schemas: nulls appear
    except ImportError:
        pass
    for name in ("tools-dt", "tools-dt-json"):
        template = chat_template(name)
        for how, examples in loaders.items():
            for sample, example in zip(all_samples(), examples):
                if not sample.messages or sample.messages[0].role not in ("system", "user"):
                    continue
                text = tok.apply_chat_template(example["messages"], tools=example.get("tools"), tokenize=False,
                                               chat_template=template)
                # the late system message of an edge sample renders in place in both
                assert text == render(sample, name), (how, sample.id)


def documented_llamafactory_check(row: dict) -> bool:
    """LLaMA-Factory's SharegptDatasetConverter: human/observation at odd turns, gpt/function_call
    at even turns, an even number of turns."""
    turns = row["conversations"]
    odd, even = ("human", "observation"), ("gpt", "function_call")
    return len(turns) % 2 == 0 and all(t["from"] in (odd, even)[i % 2] for i, t in enumerate(turns))


def test_llamafactory_dataset_dir_has_its_registry_and_loadable_rows(tmp_path, source):
    summary = export_samples([str(source)], str(tmp_path / "lf"), "llamafactory", name="fc_mix", log=lambda m: None)
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    entry = info["fc_mix"]
    assert entry["file_name"] == "fc_mix.json" and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    rows = json.loads((tmp_path / "lf" / "fc_mix.json").read_text())  # one JSON array, like the demos
    assert len(rows) == summary["rows"]
    skipped = [r for r in rows if not documented_llamafactory_check(r)]
    assert len(skipped) == summary["not_trainable_by_llamafactory"] == 1  # the prompt-only edge sample
    for row in rows:
        assert isinstance(json.loads(row["tools"]), list)
        for turn in row["conversations"]:
            if turn["from"] == "function_call":
                calls = json.loads(turn["value"])
                for call in calls if isinstance(calls, list) else [calls]:
                    assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)


def test_openai_export_writes_axolotl_and_trl_snippets(tmp_path, source):
    summary = export_samples([str(source)], str(tmp_path / "o"), "openai", log=lambda m: None)
    config = yaml.safe_load((tmp_path / "o" / "axolotl.yaml").read_text())
    entry = config["datasets"][0]
    assert entry["type"] == "chat_template" and entry["field_messages"] == "messages" and entry["field_tools"] == "tools"
    assert Path(entry["path"]) == tmp_path / "o" / "raypipe.jsonl"
    trl = (tmp_path / "o" / "trl_sft.py").read_text()
    compile(trl, "trl_sft.py", "exec")
    assert str(tmp_path / "o" / "raypipe.jsonl") in trl and summary["snippets"]


def test_bare_export_has_only_the_layouts_own_fields(tmp_path, source):
    export_samples([str(source)], str(tmp_path / "b"), "openai", bare=True, log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "b" / "raypipe.jsonl").read_text().splitlines()]
    assert all("raypipe" not in r for r in rows)
    assert not any("reasoning_content" in m for r in rows for m in r["messages"])


def test_export_refuses_to_write_into_its_input(tmp_path, source):
    with pytest.raises(RaypipeError, match="one of the inputs"):
        export_samples([str(source.parent)], str(source.parent / "out"), "openai", log=lambda m: None)


def test_export_cli(tmp_path, source):
    run = subprocess.run([sys.executable, "-m", "raypipe.cli", "export", "--to", "sharegpt", str(source),
                          "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"{len(all_samples())} samples" in run.stderr and "dataset_info.json" in run.stderr

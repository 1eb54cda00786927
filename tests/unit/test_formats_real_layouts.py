"""Real public layouts convert faithfully: BFCL V1/V4 data folders, LLaMA-Factory's glaive tool-call
demos, OpenAI cookbook fine-tuning files. The fixtures in tests/fixtures/formats/ copy each
layout exactly (file names, folders, field names and encodings) with made-up rows."""

from pathlib import Path

import pytest

from raypipe.io import convert_files, iter_samples
from raypipe.io.formats.lang import detect_lang

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


def convert(tmp_path, inputs, fmt, **kwargs):
    lines = []
    report = convert_files([str(p) for p in inputs], fmt, str(tmp_path / "out"), log=lines.append, **kwargs)
    samples = list(iter_samples(str(tmp_path / "out")))
    return report, samples, lines


# -- BFCL -------------------------------------------------------------------------------------


@pytest.fixture
def bfcl_v4(tmp_path):
    return convert(tmp_path, [FIXTURES / "bfcl_v4"], "bfcl")


def test_a_whole_bfcl_data_folder_converts_without_rejects_and_skips_non_question_files(bfcl_v4):
    report, samples, lines = bfcl_v4
    counts = report.summary["counts"]
    assert counts["rejected"] == 0 and counts["out"] == len(samples) == 9
    skipped = {Path(s["path"]).name: s["reason"] for s in report.summary["skipped"]}
    assert set(skipped) == {"BFCL_v4_format_sensitivity.json", "math_api.json", "memory_kv.json",
                            "memory_vector.json", "message_api.json", "web_search.json",
                            "BFCL_v4_multi_turn_base.json", "BFCL_v4_simple_python.json",
                            "BFCL_v4_rest.json", "BFCL_v4_chatable.json"}
    assert "format-sensitivity" in skipped["BFCL_v4_format_sensitivity.json"]
    assert "function docs" in skipped["math_api.json"] and "unused_datasets" in skipped["BFCL_v4_chatable.json"]
    # one line per skipped file, no per-row rejects
    assert sum(line.startswith("skipped ") for line in lines) == 10


def test_multi_turn_items_carry_their_functions_minus_excluded(bfcl_v4):
    by_id = {s.meta["bfcl_id"]: s for s in bfcl_v4[1]}
    base = by_id["multi_turn_base_0"]
    assert [f["name"] for f in base.functions] == ["add", "round_number", "send_message", "view_messages_sent"]
    assert base.meta["excluded_function"] == ["subtract"]
    assert base.meta["ground_truth"][1] == ["send_message(receiver_id='USR002',message='8')"]
    assert base.meta["initial_config"]["MessageAPI"]["user_map"] == {"Alice": "USR001"}
    assert base.meta["turn_starts"] == [0, 1]
    miss = by_id["multi_turn_miss_func_0"]
    assert [f["name"] for f in miss.functions] == ["add", "subtract", "send_message", "view_messages_sent"]
    assert miss.meta["missed_function"] == {"1": ["subtract"]} and miss.meta["turn_starts"] == [0, 1, 1]
    assert [f["name"] for f in by_id["web_search_0"].functions] == ["search_engine_query", "fetch_url_content"]


def test_memory_items_keep_their_scenario_and_read_the_key_value_backend(bfcl_v4):
    by_id = {s.meta["bfcl_id"]: s for s in bfcl_v4[1]}
    memory = by_id["memory_30-healthcare-0"]
    assert memory.meta["scenario"] == "healthcare" and memory.meta["involved_classes"] == ["MemoryAPI"]
    assert [f["name"] for f in memory.functions] == ["core_memory_add", "archival_memory_key_search"]
    assert by_id["memory_prereq_0-customer-0"].meta["topic"] == "Onboarding"


def test_bfcl_prompts_in_chinese_are_tagged_by_script(bfcl_v4):
    by_id = {s.meta["bfcl_id"]: s for s in bfcl_v4[1]}
    assert by_id["multi_turn_base_1"].lang == "zh-Hant" and by_id["simple_python_1"].lang == "zh-Hans"
    assert by_id["simple_python_0"].lang == "en"


def test_multi_turn_file_without_its_function_docs_is_rejected_with_the_reason(tmp_path):
    lonely = tmp_path / "BFCL_v4_multi_turn_base.json"
    lonely.write_text((FIXTURES / "bfcl_v4/data/BFCL_v4_multi_turn_base.json").read_text())
    report, samples, _ = convert(tmp_path, [lonely], "bfcl")
    assert samples == [] and report.rejected == 2
    rejects = report.rejects_preview
    assert "no function docs for 'MathAPI'" in rejects[0]["reason"] and "multi_turn_func_doc" in rejects[0]["reason"]


def test_bfcl_v1_executable_items_keep_execution_result_type_and_inline_ground_truth(tmp_path):
    _, samples, _ = convert(tmp_path, [FIXTURES / "bfcl_v1"], "bfcl")
    first = samples[0]
    assert first.meta["execution_result_type"] == ["exact_match"]
    assert first.meta["ground_truth"] == ["calc_binomial_probability(n=20, k=5, p=0.6)"]
    assert first.meta["category"] == "executable_simple"


# -- OpenAI cookbook fine-tuning files ----------------------------------------------------------


def test_openai_cookbook_file_with_double_encoded_arguments_converts_whole(tmp_path):
    report, samples, lines = convert(tmp_path, [FIXTURES / "openai_cookbook/drone_training.jsonl"], "openai")
    assert report.rejected == 0 and len(samples) == 4
    assert [s.messages[-1].tool_calls[0].arguments for s in samples] == [
        {"altitude": 100}, {"location": "current"}, {"location": "home_base"}, {}]
    assert report.summary["repairs"] == {"double_encoded_arguments": 2}
    assert report.summary["sources"][0]["repairs"] == {"double_encoded_arguments": 2}
    assert any("2 double encoded arguments" in line for line in lines)
    assert all(s.meta["parallel_tool_calls"] is False for s in samples)
    assert samples[0].messages[-1].tool_calls[0].id == "call_id"


def test_legacy_functions_layout_and_weighted_chat_convert(tmp_path):
    report, samples, _ = convert(tmp_path, [FIXTURES / "openai_cookbook/legacy_functions.jsonl",
                                            FIXTURES / "openai_cookbook/toy_chat_fine_tuning.jsonl"], "openai")
    assert report.rejected == 0
    legacy = next(s for s in samples if s.functions)
    assert legacy.messages[1].tool_calls[0].arguments == {"location": "San Francisco, USA", "format": "celsius"}
    assert legacy.messages[2].role == "tool" and legacy.messages[2].name == "get_current_weather"


# -- LLaMA-Factory glaive tool-call demos -----------------------------------------------------------


def test_llamafactory_demos_convert_with_calls_observations_and_language(tmp_path):
    report, samples, _ = convert(tmp_path, [FIXTURES / "llamafactory"], "sharegpt")
    assert report.rejected == 0 and len(samples) == 5
    langs = sorted(s.lang for s in samples)
    assert langs == ["en", "en", "zh-Hans", "zh-Hans", "zh-Hans"]
    parallel = next(s for s in samples if len(s.tool_calls()) == 2)
    assert [m.role for m in parallel.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m.name for m in parallel.messages if m.role == "tool"] == ["generate_password", "generate_password"]
    invoice = next(s for s in samples if s.tool_calls() and s.tool_calls()[0].name == "generate_invoice")
    assert invoice.tool_calls()[0].arguments["customer_name"] == "约翰·多伊"


def test_explicit_lang_flag_wins_over_detection(tmp_path):
    _, samples, _ = convert(tmp_path, [FIXTURES / "llamafactory/glaive_toolcall_zh_demo.json"], "sharegpt", lang="zh-CN")
    assert {s.lang for s in samples} == {"zh-CN"}
    _, samples, _ = convert(tmp_path, [FIXTURES / "bfcl_v4/data/BFCL_v4_simple_python.json"], "bfcl", lang="en")
    assert {s.lang for s in samples} == {"en"}


@pytest.mark.parametrize("text, lang", [
    ("我需要为John Doe生成一张发票", "zh-Hans"), ("找出底為10單位，高為5單位的三角形面積。", "zh-Hant"),
    ("幫我查一下台北的天氣", "zh-Hant"), ("帮我查一下 New York 的天气", "zh-Hans"), ("你好", "zh"),
    ("What does 你好 mean?", "en"), ("今日の天気は？", "ja"), ("오늘 날씨 어때요?", "ko"),
    ("Какая сегодня погода?", "ru"), ("Τι καιρό κάνει;", "el"), ("ما هو الطقس اليوم؟", "ar"),
    ("¿Qué tiempo hace hoy?", "en"), ("12345 !?", None),
])
def test_detect_lang_by_script(text, lang):
    assert detect_lang(text) == lang

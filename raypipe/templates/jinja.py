"""Jinja twins of the renderer, for `tokenizer.apply_chat_template` (transformers, vLLM).

`chat_template(fmt)` is generated from the same constants as `render.py`, and the golden
tests check that `apply_chat_template(messages, tools=...)` on `to_chat_messages(sample)`
gives exactly `render(sample, fmt)`. The assistant body sits inside ``{% generation %}`` so
transformers' ``return_assistant_tokens_mask`` marks the same tokens raypipe trains.

Messages are OpenAI-style: assistant ``tool_calls`` as ``{"type": "function", "function":
{"name", "arguments"}}`` with arguments as an object (vLLM's server converts JSON-string
arguments to objects before templating), reasoning as ``reasoning_content``, ``tools`` as
``[{"type": "function", "function": spec}]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raypipe.schema import Sample
from raypipe.templates.formats import (
    ANSWER,
    IM_END,
    IM_START,
    THINK_END,
    THINK_START,
    TOOL_CALL_BEGIN,
    TOOL_CALL_END,
    USE_TOOL,
    FormatConfig,
    get_format,
    system_instructions,
)
from raypipe.templates.render import unwrap_spec


def to_chat_messages(sample: Sample) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(OpenAI-style messages, OpenAI-style tools or None) for `sample`."""
    messages = []
    for m in sample.messages:
        out: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant":
            if m.tool_calls:
                out["tool_calls"] = [
                    {
                        **({"id": c.id} if c.id else {}),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
            if m.reasoning is not None:
                out["reasoning_content"] = m.reasoning
        if m.role == "tool":
            if m.name is not None:
                out["name"] = m.name
            if m.tool_call_id is not None:
                out["tool_call_id"] = m.tool_call_id
        messages.append(out)
    tools = [{"type": "function", "function": unwrap_spec(f)} for f in sample.functions]
    return messages, tools or None


def _lit(text: str) -> str:
    """A Jinja string literal (Jinja unescapes JSON's escapes the same way)."""
    return json.dumps(text)


# Python literal of a JSON value, as `pythonic.format_value` writes it (sorted dict keys).
_PY_MACRO = """\
{%- macro py(v) -%}
{%- if v is none -%}None
{%- elif v is boolean -%}{{ 'True' if v else 'False' }}
{%- elif v is string -%}{{ v | tojson }}
{%- elif v is mapping -%}{{ '{' }}{%- for k, x in v | dictsort(true) -%}{{ k | tojson }}: {{ py(x) }}{{ ', ' if not loop.last }}{%- endfor -%}{{ '}' }}
{%- elif v is iterable -%}[{%- for x in v -%}{{ py(x) }}{{ ', ' if not loop.last }}{%- endfor -%}]
{%- else -%}{{ v }}
{%- endif -%}
{%- endmacro -%}
"""


def _calls_block(fmt: FormatConfig) -> str:
    unwrap = "{%- set f = c.function if c.function is defined else c -%}"
    if fmt.call_style == "json":
        return (
            "{%- for c in m.tool_calls -%}" + unwrap
            + "{%- set args = f.arguments if f.arguments is string else f.arguments | tojson(sort_keys=true) -%}"
            + f"{{{{- {_lit(TOOL_CALL_BEGIN)} + '{{\"name\": ' + f.name | tojson + ', \"arguments\": ' + args + '}}' + {_lit(TOOL_CALL_END)} -}}}}"
            + "{%- endfor -%}"
        )
    return (
        "{{- '[' -}}{%- for c in m.tool_calls -%}" + unwrap
        + "{%- if f.arguments is string -%}{{ raise_exception('tool call arguments must be objects, not JSON strings') }}{%- endif -%}"
        + "{{- f.name + '(' -}}"
        + "{%- for k, v in (f.arguments or {}) | dictsort(true) -%}{{- k + '=' + py(v) -}}{{- ', ' if not loop.last -}}{%- endfor -%}"
        + "{{- ')' -}}{{- ', ' if not loop.last -}}{%- endfor -%}{{- ']' -}}"
    )


def _assistant_block(fmt: FormatConfig) -> str:
    body = ""
    if fmt.decision_token:
        body += f"{{{{- {_lit(USE_TOOL)} if m.tool_calls else {_lit(ANSWER)} -}}}}"
    if fmt.reasoning:
        body += (
            "{%- if m.reasoning_content -%}"
            f"{{{{- {_lit(THINK_START)} + m.reasoning_content + {_lit(THINK_END)} -}}}}"
            "{%- endif -%}"
        )
    body += (
        "{%- if m.tool_calls -%}"
        "{%- if m.content -%}{{- m.content + '\\n' -}}{%- endif -%}"
        + _calls_block(fmt)
        + "{%- else -%}{{- m.content or '' -}}{%- endif -%}"
    )
    return (
        f"{{{{- {_lit(IM_START + 'assistant' + chr(10))} -}}}}"
        "{%- generation -%}" + body + f"{{{{- {_lit(IM_END)} -}}}}" + "{%- endgeneration -%}"
        "{{- '\\n' -}}"
    )


def _turn(role_expr: str, content_expr: str) -> str:
    return f"{{{{- {_lit(IM_START)} + {role_expr} + '\\n' + {content_expr} + {_lit(IM_END + chr(10))} -}}}}"


def chat_template(fmt: FormatConfig | str) -> str:
    """The Jinja chat template that renders exactly like `render(sample, fmt)`."""
    fmt = get_format(fmt)
    funcs_json = "ns.funcs | tojson(sort_keys=true)"
    parts = [
        _PY_MACRO,
        "{%- set ns = namespace(funcs=[], rest=messages) -%}",
    ]
    if fmt.functions_in != "none":
        parts.append(
            "{%- for t in (tools or []) -%}"
            "{%- set ns.funcs = ns.funcs + [t.function if (t.type == 'function' and t.function is defined) else t] -%}"
            "{%- endfor -%}"
        )
    has_system = "messages and messages[0].role == 'system'"
    system_turn = _turn("'system'", "(messages[0].content or '')")
    if fmt.functions_in == "system":
        parts.append(
            "{%- if ns.funcs -%}"
            f"{{%- set block = {_lit(system_instructions(fmt) + chr(10))} + {funcs_json} -%}}"
            f"{{%- if {has_system} -%}}"
            "{%- set block = (messages[0].content or '') + '\\n\\n' + block -%}"
            "{%- set ns.rest = messages[1:] -%}"
            "{%- endif -%}"
            + _turn("'system'", "block")
            + f"{{%- elif {has_system} -%}}" + system_turn + "{%- set ns.rest = messages[1:] -%}"
            "{%- endif -%}"
        )
    else:
        parts.append(
            f"{{%- if {has_system} -%}}" + system_turn + "{%- set ns.rest = messages[1:] -%}{%- endif -%}"
        )
    if fmt.functions_in == "tools_role":
        parts.append("{%- if ns.funcs -%}" + _turn("'tools'", funcs_json) + "{%- endif -%}")
    parts.append(
        "{%- for m in ns.rest -%}"
        "{%- if m.role == 'assistant' -%}" + _assistant_block(fmt)
        + "{%- else -%}" + _turn("m.role", "(m.content or '')") + "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        f"{{{{- {_lit(IM_START + 'assistant' + chr(10))} -}}}}"
        "{%- endif -%}"
    )
    return "\n".join(parts)


def save_tokenizer(tokenizer: Any, fmt: FormatConfig | str, out_dir: str | Path) -> Path:
    """Add the format's special tokens, set its chat template, and save the tokenizer.

    Returns `out_dir`. The caller resizes the model's embeddings if tokens were added.
    """
    from raypipe.templates.tokenize import add_special_tokens

    fmt = get_format(fmt)
    add_special_tokens(tokenizer, fmt)
    tokenizer.chat_template = chat_template(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return out

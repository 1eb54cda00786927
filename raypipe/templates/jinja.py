"""Jinja twins of the renderer, for `tokenizer.apply_chat_template` (transformers, vLLM).

`chat_template(fmt)` is generated from the same constants as `render.py`, and the golden
tests check that `apply_chat_template(messages, tools=...)` on `to_chat_messages(sample)`
gives exactly `render(sample, fmt)`. The assistant body sits inside ``{% generation %}`` so
transformers' ``return_assistant_tokens_mask`` marks the same tokens raypipe trains.

Messages are OpenAI-style: assistant ``tool_calls`` as ``{"type": "function", "function":
{"name", "arguments"}}``, reasoning as ``reasoning_content`` (or ``reasoning``), ``tools`` as
``[{"type": "function", "function": spec}]`` (or plain specs). The wire forms render exactly
as the object forms do: ``arguments`` given as a JSON string is parsed by a small JSON reader
written in Jinja (`_JSON_MACROS`; servers normalise arguments before templating, but TRL and
LLaMA-Factory call the template on whatever the data holds), and ``content`` given as a list
of ``{"type": "text", "text": ...}`` parts renders as their concatenated text.
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

# A JSON reader in Jinja: `_jval(st)` parses the value at `st.s[st.p:]` into `st.v` and
# advances `st.p`; a problem is put in `st.err`. Jinja has no while loop, so loops run over an
# upper bound of the steps left and skip once done. `'%c' | format(code)` is chr(code).
_JSON_MACROS = r"""
{%- macro _jws(st) -%}
{%- set rest = st.s[st.p:] -%}{%- set st.p = st.p + (rest | length) - (rest.lstrip(' \t\n\r') | length) -%}
{%- endmacro -%}
{%- macro _jstr(st) -%}
{%- set m = namespace(out='', p=st.p + 1, go=true) -%}
{%- set esc = {'n': '\n', 't': '\t', 'r': '\r', 'b': '\b', 'f': '\f', '/': '/', '\\': '\\', '"': '"'} -%}
{%- for _ in range(st.s.count('\\', st.p) + 1) -%}{%- if m.go -%}
{%- set q = st.s.find('"', m.p) -%}{%- set b = st.s.find('\\', m.p) -%}
{%- if q == -1 -%}{%- set st.err = 'unterminated string' -%}{%- set m.go = false -%}
{%- elif b == -1 or q < b -%}{%- set m.out = m.out + st.s[m.p:q] -%}{%- set m.p = q + 1 -%}{%- set m.go = false -%}
{%- else -%}
{%- set m.out = m.out + st.s[m.p:b] -%}{%- set e = st.s[b + 1:b + 2] -%}
{%- if e == 'u' -%}
{%- set code = st.s[b + 2:b + 6] | int(-1, 16) -%}{%- set m.p = b + 6 -%}
{%- if 55296 <= code < 56320 and st.s[m.p:m.p + 2] == '\\u' -%}
{%- set low = st.s[m.p + 2:m.p + 6] | int(-1, 16) -%}
{%- if 56320 <= low < 57344 -%}{%- set code = 65536 + (code - 55296) * 1024 + (low - 56320) -%}{%- set m.p = m.p + 6 -%}{%- endif -%}
{%- endif -%}
{%- if code < 0 -%}{%- set st.err = 'bad \\u escape' -%}{%- set m.go = false -%}{%- else -%}{%- set m.out = m.out + ('%c' | format(code)) -%}{%- endif -%}
{%- elif e in esc -%}{%- set m.out = m.out + esc[e] -%}{%- set m.p = b + 2 -%}
{%- else -%}{%- set st.err = 'bad escape' -%}{%- set m.go = false -%}
{%- endif -%}
{%- endif -%}
{%- endif -%}{%- endfor -%}
{%- set st.v = m.out -%}{%- set st.p = m.p -%}
{%- endmacro -%}
{%- macro _jnum(st) -%}
{%- set m = namespace(e=st.p, go=true) -%}
{%- for ch in st.s[st.p:st.p + 400] -%}{%- if m.go and ch in '+-0123456789.eE' -%}{%- set m.e = m.e + 1 -%}{%- else -%}{%- set m.go = false -%}{%- endif -%}{%- endfor -%}
{%- set t = st.s[st.p:m.e] -%}
{%- if not t -%}{%- set st.err = 'unexpected character at ' ~ st.p -%}{%- set st.v = none -%}
{%- elif '.' in t or 'e' in t or 'E' in t -%}{%- set st.v = t | float -%}
{%- else -%}{%- set st.v = t | int -%}
{%- endif -%}
{%- set st.p = m.e -%}
{%- endmacro -%}
{%- macro _jval(st) -%}
{%- set _ = _jws(st) -%}{%- set c = st.s[st.p:st.p + 1] -%}
{%- if c == '"' -%}{%- set _ = _jstr(st) -%}
{%- elif c == '{' -%}
{%- set m = namespace(d={}, go=true) -%}{%- set st.p = st.p + 1 -%}{%- set _ = _jws(st) -%}
{%- if st.s[st.p:st.p + 1] == '}' -%}{%- set st.p = st.p + 1 -%}{%- set m.go = false -%}{%- endif -%}
{%- for _ in range(st.s.count(':', st.p) + 1) -%}{%- if m.go and not st.err -%}
{%- set _ = _jws(st) -%}
{%- if st.s[st.p:st.p + 1] != '"' -%}{%- set st.err = 'expected a key' -%}{%- else -%}
{%- set _ = _jstr(st) -%}{%- set k = st.v -%}{%- set _ = _jws(st) -%}
{%- if st.s[st.p:st.p + 1] != ':' -%}{%- set st.err = 'expected a colon' -%}{%- else -%}
{%- set st.p = st.p + 1 -%}{%- set _ = _jval(st) -%}{%- set m.d = dict(m.d, **{k: st.v}) -%}
{%- set _ = _jws(st) -%}{%- set c = st.s[st.p:st.p + 1] -%}{%- set st.p = st.p + 1 -%}
{%- if c == '}' -%}{%- set m.go = false -%}{%- elif c != ',' -%}{%- set st.err = 'expected , or }' -%}{%- endif -%}
{%- endif -%}{%- endif -%}
{%- endif -%}{%- endfor -%}
{%- if m.go and not st.err -%}{%- set st.err = 'unterminated object' -%}{%- endif -%}
{%- set st.v = m.d -%}
{%- elif c == '[' -%}
{%- set m = namespace(l=[], go=true) -%}{%- set st.p = st.p + 1 -%}{%- set _ = _jws(st) -%}
{%- if st.s[st.p:st.p + 1] == ']' -%}{%- set st.p = st.p + 1 -%}{%- set m.go = false -%}{%- endif -%}
{%- for _ in range(st.s.count(',', st.p) + 1) -%}{%- if m.go and not st.err -%}
{%- set _ = _jval(st) -%}{%- set m.l = m.l + [st.v] -%}
{%- set _ = _jws(st) -%}{%- set c = st.s[st.p:st.p + 1] -%}{%- set st.p = st.p + 1 -%}
{%- if c == ']' -%}{%- set m.go = false -%}{%- elif c != ',' -%}{%- set st.err = 'expected , or ]' -%}{%- endif -%}
{%- endif -%}{%- endfor -%}
{%- if m.go and not st.err -%}{%- set st.err = 'unterminated array' -%}{%- endif -%}
{%- set st.v = m.l -%}
{%- elif st.s[st.p:st.p + 4] == 'true' -%}{%- set st.v = true -%}{%- set st.p = st.p + 4 -%}
{%- elif st.s[st.p:st.p + 5] == 'false' -%}{%- set st.v = false -%}{%- set st.p = st.p + 5 -%}
{%- elif st.s[st.p:st.p + 4] == 'null' -%}{%- set st.v = none -%}{%- set st.p = st.p + 4 -%}
{%- else -%}{%- set _ = _jnum(st) -%}
{%- endif -%}
{%- endmacro -%}
{%- macro _nonull(st) -%}
{%- set v = st.v -%}
{%- if v is mapping -%}
{%- set m = namespace(d={}) -%}
{%- for k, x in v.items() -%}{%- if x is not none -%}{%- set st.v = x -%}{%- set _ = _nonull(st) -%}{%- set m.d = dict(m.d, **{k: st.v}) -%}{%- endif -%}{%- endfor -%}
{%- set st.v = m.d -%}
{%- elif v is iterable and v is not string -%}
{%- set m = namespace(l=[]) -%}
{%- for x in v -%}{%- set st.v = x -%}{%- set _ = _nonull(st) -%}{%- set m.l = m.l + [st.v] -%}{%- endfor -%}
{%- set st.v = m.l -%}
{%- endif -%}
{%- endmacro -%}
{%- macro _text(c) -%}
{%- if c is none -%}
{%- elif c is string -%}{{- c -}}
{%- elif c is mapping -%}{{- raise_exception('message content must be a string or a list of text parts') -}}
{%- else -%}{%- for part in c -%}
{%- if part is mapping and part.type == 'text' -%}{{- part.text -}}
{%- else -%}{{- raise_exception('only text content parts are supported') -}}{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
"""

# The arguments of call `f` as an object in `args`: objects as they are, a JSON string parsed
# (an empty string is no arguments), anything else refused.
_ARGS = (
    "{%- if f.arguments is string -%}"
    "{%- set st = namespace(s=f.arguments, p=0, v=none, err='') -%}"
    "{%- if f.arguments.strip() -%}{%- set _ = _jval(st) -%}{%- set _ = _jws(st) -%}{%- else -%}{%- set st.v = {} -%}{%- endif -%}"
    "{%- if st.err or st.p < (st.s | length) or st.v is not mapping -%}"
    "{{- raise_exception('tool call arguments must be a JSON object, got ' ~ f.arguments[:80]) -}}"
    "{%- endif -%}"
    "{%- set args = st.v -%}"
    "{%- elif f.arguments is mapping or f.arguments is none -%}{%- set args = f.arguments or {} -%}"
    "{%- else -%}{{- raise_exception('tool call arguments must be an object or a JSON string') -}}"
    "{%- endif -%}"
)


def _calls_block(fmt: FormatConfig) -> str:
    unwrap = "{%- set f = c.function if c.function is defined else c -%}"
    if fmt.call_style == "json":
        return (
            "{%- for c in m.tool_calls -%}" + unwrap + _ARGS
            + f"{{{{- {_lit(TOOL_CALL_BEGIN)} + '{{\"name\": ' + f.name | tojson + ', \"arguments\": ' + args | tojson(sort_keys=true) + '}}' + {_lit(TOOL_CALL_END)} -}}}}"
            + "{%- endfor -%}"
        )
    return (
        "{{- '[' -}}{%- for c in m.tool_calls -%}" + unwrap + _ARGS
        + "{{- f.name + '(' -}}"
        + "{%- for k, v in args | dictsort(true) -%}{{- k + '=' + py(v) -}}{{- ', ' if not loop.last -}}{%- endfor -%}"
        + "{{- ')' -}}{{- ', ' if not loop.last -}}{%- endfor -%}{{- ']' -}}"
    )


def _assistant_block(fmt: FormatConfig) -> str:
    body = ""
    if fmt.decision_token:
        body += f"{{{{- {_lit(USE_TOOL)} if m.tool_calls else {_lit(ANSWER)} -}}}}"
    if fmt.reasoning:
        body += (
            "{%- set r = m.reasoning_content if m.reasoning_content is defined and m.reasoning_content is not none else m.reasoning -%}"
            "{%- if r -%}"
            f"{{{{- {_lit(THINK_START)} + r + {_lit(THINK_END)} -}}}}"
            "{%- endif -%}"
        )
    body += (
        "{%- if m.tool_calls -%}"
        "{%- set text = _text(m.content) -%}"
        "{%- if text -%}{{- text + '\\n' -}}{%- endif -%}"
        + _calls_block(fmt)
        + "{%- else -%}{{- _text(m.content) -}}{%- endif -%}"
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
        _JSON_MACROS,
        "{%- set ns = namespace(funcs=[], rest=messages) -%}",
    ]
    if fmt.functions_in != "none":
        parts.append(
            "{%- for t in (tools or []) -%}"
            "{%- set st = namespace(v=t.function if (t.type == 'function' and t.function is defined) else t) -%}"
            "{%- set _ = _nonull(st) -%}"
            "{%- set ns.funcs = ns.funcs + [st.v] -%}"
            "{%- endfor -%}"
        )
    has_system = "messages and messages[0].role == 'system'"
    system_turn = _turn("'system'", "_text(messages[0].content)")
    if fmt.functions_in == "system":
        parts.append(
            "{%- if ns.funcs -%}"
            f"{{%- set block = {_lit(system_instructions(fmt) + chr(10))} + {funcs_json} -%}}"
            f"{{%- if {has_system} -%}}"
            "{%- set block = _text(messages[0].content) + '\\n\\n' + block -%}"
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
        + "{%- else -%}" + _turn("m.role", "_text(m.content)") + "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        f"{{{{- {_lit(IM_START + 'assistant' + chr(10))} -}}}}"
        "{%- endif -%}"
    )
    return "\n".join(parts)


def save_tokenizer(tokenizer: Any, fmt: FormatConfig | str, out_dir: str | Path) -> Path:
    """Add the format's special tokens, set its chat template and response template, and save
    the tokenizer.

    The response template (`raypipe.templates.response_template`) is what `transformers serve`
    reads to return OpenAI ``tool_calls``; it is written into ``tokenizer_config.json`` even by
    transformers versions that do not know the attribute. Returns `out_dir`. The caller resizes
    the model's embeddings if tokens were added.
    """
    from raypipe.templates.response_template import response_template
    from raypipe.templates.tokenize import add_special_tokens

    fmt = get_format(fmt)
    add_special_tokens(tokenizer, fmt)
    tokenizer.chat_template = chat_template(fmt)
    tokenizer.response_template = response_template(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("response_template") != tokenizer.response_template:
        config["response_template"] = tokenizer.response_template
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out

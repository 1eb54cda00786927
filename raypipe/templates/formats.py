"""The prompt formats of the seed paper (Figure 1), named by one config object.

Every format is ChatML: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per turn. A format
chooses where the function specs go (a dedicated ``tools`` turn, the ``system`` turn with
usage instructions, or nowhere), whether each assistant turn starts with a Decision Token,
whether a reasoning block precedes the calls (CoT, Figure 1(h)), and how calls are written.

All special tokens are declared here and nowhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from raypipe.errors import RaypipeError

# -- special tokens (the one place) ---------------------------------------------------------
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ANSWER = "<|answer|>"  # Decision Token: a direct answer follows
USE_TOOL = "<|use_tool|>"  # Decision Token: function calls follow
THINK_START = "<think>"  # reasoning block before the calls (CoT formats)
THINK_END = "</think>"
TOOL_CALL_BEGIN = "<|tool_call_begin|>"  # JSON call style: one block per call
TOOL_CALL_END = "<|tool_call_end|>"
# Tokens a generation may end with (vLLM/transformers may leave them in the text).
STOP_TOKENS = (IM_END, "<|endoftext|>")

FUNCTIONS_IN = ("tools_role", "system", "none")
CALL_STYLES = ("pythonic", "json")


@dataclass(frozen=True)
class FormatConfig:
    functions_in: str = "tools_role"
    decision_token: bool = True
    reasoning: bool = False
    call_style: str = "pythonic"

    def __post_init__(self) -> None:
        problems = []
        if self.functions_in not in FUNCTIONS_IN:
            problems.append(f"functions_in must be one of {FUNCTIONS_IN}, got {self.functions_in!r}")
        if self.call_style not in CALL_STYLES:
            problems.append(f"call_style must be one of {CALL_STYLES}, got {self.call_style!r}")
        for key in ("decision_token", "reasoning"):
            if not isinstance(getattr(self, key), bool):
                problems.append(f"{key} must be true or false, got {getattr(self, key)!r}")
        if problems:
            raise RaypipeError("bad format: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


# Named presets; docs/templates.md describes each. Letters of the paper's Figure 1 in comments.
PRESETS: dict[str, FormatConfig] = {
    # plain ChatML, functions never shown (instruction following, Figure 1(a)/(d))
    "none": FormatConfig(functions_in="none", decision_token=False),
    # functions as JSON in a dedicated `tools` turn (Figure 1(b)), calls as a list (1(f))
    "tools": FormatConfig(functions_in="tools_role", decision_token=False),
    # ... with the Decision Token (1(e), 1(g)): the default
    "tools-dt": FormatConfig(functions_in="tools_role", decision_token=True),
    # ... with a reasoning block before the calls (1(h))
    "tools-dt-cot": FormatConfig(functions_in="tools_role", decision_token=True, reasoning=True),
    # ... with JSON tool-call blocks instead of the pythonic list (Breeze-FC style)
    "tools-dt-json": FormatConfig(functions_in="tools_role", decision_token=True, call_style="json"),
    # functions in the system turn with usage instructions (Figure 1(c))
    "system": FormatConfig(functions_in="system", decision_token=False),
    "system-dt": FormatConfig(functions_in="system", decision_token=True),
    "system-dt-cot": FormatConfig(functions_in="system", decision_token=True, reasoning=True),
}
DEFAULT_FORMAT = "tools-dt"


def get_format(name: str | FormatConfig | dict) -> FormatConfig:
    """A preset by name (or a FormatConfig / dict of its fields, passed through)."""
    if isinstance(name, FormatConfig):
        return name
    if isinstance(name, dict):
        unknown = set(name) - set(FormatConfig.__dataclass_fields__)
        if unknown:
            raise RaypipeError(f"bad format: unknown keys {sorted(unknown)}")
        return FormatConfig(**name)
    try:
        return PRESETS[name]
    except KeyError:
        raise RaypipeError(
            f"unknown format {name!r}; presets: {', '.join(PRESETS)}"
        ) from None


def format_name(fmt: FormatConfig) -> str:
    """The preset name of `fmt`, or "custom"."""
    for name, preset in PRESETS.items():
        if preset == fmt:
            return name
    return "custom"


def special_tokens(fmt: FormatConfig) -> list[str]:
    """The tokens `fmt` needs as single special tokens, in a stable order."""
    tokens = [IM_START, IM_END]
    if fmt.decision_token:
        tokens += [ANSWER, USE_TOOL]
    if fmt.reasoning:
        tokens += [THINK_START, THINK_END]
    if fmt.call_style == "json":
        tokens += [TOOL_CALL_BEGIN, TOOL_CALL_END]
    return tokens


def system_instructions(fmt: FormatConfig) -> str:
    """Usage instructions written before the function specs in the `system` formats.

    Special tokens are deliberately not mentioned: the model learns them from the data, and a
    special token inside the system turn would be a confusing input.
    """
    lines = [
        "You can call the functions listed below. If some of them help with the user's "
        "request, call them; otherwise answer directly.",
    ]
    if fmt.call_style == "pythonic":
        lines.append(
            "Write function calls as a Python list of calls with keyword arguments, "
            'for example [func_a(x=1, y="text"), func_b(z=[1, 2])].'
        )
    else:
        lines.append(
            'Write each function call as a JSON object {"name": ..., "arguments": {...}}.'
        )
    if fmt.reasoning:
        lines.append("Before calling functions, explain briefly how they solve the request.")
    lines.append("Functions (JSON):")
    return "\n".join(lines)

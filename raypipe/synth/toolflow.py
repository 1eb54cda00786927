"""ToolFlow: graph-sampled tools + a planned dialog played out by three agents.

Per dialog (one input row, one run of `ToolflowStage.program` by the engine's executor):

1. the tools were sampled from the tool graph beforehand (`make_inputs`, seeded per dialog id);
2. a **planner** call writes the plan: a list of turns, each a user intent naming the tools
   it needs, or chit-chat that needs none;
3. per planned turn the **user agent** writes the user's message, the **assistant agent**
   answers with calls or text (every turn checked by the validator, repaired once or the dialog
   is rejected), and the **tool agent** simulates each call's result; the assistant may call
   again after seeing results, up to `max_steps_per_turn` actions, and ends the turn with text.

The output is a canonical multi-turn `Sample` whose `meta` holds the plan, the sampled
subgraph and per-turn bookkeeping (planned vs called tools, repairs) for the quality report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from raypipe.llm.stage import LLMStage
from raypipe.schema import Lineage, Message, Sample
from raypipe.synth.agents import (
    ACTION_FORMAT, checked_assistant_turn, checked_row, simulate_results, specs_block, transcript,
)
from raypipe.synth.sampling import SamplingConfig, dialog_rng, sample_tools
from raypipe.synth.toolgraph import ToolGraph
from raypipe.synth.toolpool import unwrap

STAGE = "toolflow"

PLANNER_SYSTEM = (
    "You are the dialog planner for a dataset of natural, coherent conversations between a user "
    "and an assistant that can call functions. Given the functions available, plan one "
    "conversation of {min_turns} to {max_turns} user turns that a real person might have: the "
    "turns should follow from each other (later requests build on earlier answers), most turns "
    "should need one or more of the functions (sometimes several, sometimes one whose result "
    "feeds another), and a turn may be chit-chat or a question answerable without functions. "
    'Reply with one JSON object and nothing else: {{"turns": [{{"intent": "<what the user '
    'wants in this turn>", "tools": ["<function names needed, [] for none>"]}}]}}.'
)

USER_SYSTEM = (
    "You play the user in a conversation with an AI assistant that can use tools. Write the "
    "user's next message so that it pursues the given intent, sounds like a real person (concise, "
    "casual, no mention of functions or APIs), and fits the conversation so far. If the "
    "assistant's last message asked you something, answer it first. Give concrete values the "
    "assistant will need (names, dates, amounts) unless the intent says otherwise. "
    "Reply with the message text only."
)

ASSISTANT_SYSTEM = (
    "You are a helpful assistant that can call functions. Decide the next action: call the "
    "functions needed for the user's latest request with arguments taken from the conversation "
    "(never invent values the user did not give; ask instead), or, once the results are in or "
    "no function is needed, answer the user in natural language using those results. "
    + ACTION_FORMAT
)


@dataclass
class DialogConfig:
    min_turns: int = 2
    max_turns: int = 4
    max_steps_per_turn: int = 3  # assistant actions per user turn (calls ... then the answer)
    plan: bool = True  # False: no planner call (ToolFlow's "no plan" ablation): free user turns
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.min_turns <= self.max_turns:
            raise ValueError("need 1 <= min_turns <= max_turns")
        if self.max_steps_per_turn < 2:  # the last step must answer: one more is needed to call
            raise ValueError("max_steps_per_turn must be >= 2")


def make_inputs(graph: ToolGraph, n: int, seed: int, cfg: DialogConfig,
                start: int = 0) -> list[dict[str, Any]]:
    """Rows for dialogs start..start+n-1; the tools are sampled here, deterministically from
    (seed, dialog id). Rows carry node ids only: the specs travel once, in the program."""
    rows = []
    for i in range(start, start + n):
        did = f"toolflow-{seed}-{i:08d}"
        picked = sample_tools(graph, dialog_rng(seed, did), cfg.sampling)
        rows.append({"id": did, "subgraph": json.dumps(picked, ensure_ascii=False)})
    return rows


def specs_by_node(graph: ToolGraph) -> dict[str, dict[str, Any]]:
    return {n: unwrap(s) for n, s in zip(graph.node_ids, graph.specs)}


def unplanned_turns(row_id: str, names: list[str], cfg: DialogConfig) -> list[dict[str, Any]]:
    """Without a planner every turn is a free request the tools could serve (seeded per id)."""
    n = dialog_rng(0, row_id).randint(cfg.min_turns, cfg.max_turns)
    intent = ("ask for something, following from the conversation so far, that an assistant "
              f"with these functions could help with: {', '.join(names)}")
    return [{"intent": intent, "tools": []} for _ in range(n)]


def _plan_validator(names: set[str], cfg: DialogConfig):
    def check(plan: Any) -> None:
        turns = plan.get("turns") if isinstance(plan, dict) else None
        if not isinstance(turns, list) or not turns:
            raise ValueError('expected {"turns": [...]} with at least one turn')
        if not cfg.min_turns <= len(turns) <= cfg.max_turns:
            raise ValueError(f"plan has {len(turns)} turns; write {cfg.min_turns} to {cfg.max_turns}")
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or not isinstance(t.get("intent"), str) or not t["intent"].strip():
                raise ValueError(f"turns[{i}]: needs a non-empty 'intent'")
            tools = t.get("tools", [])
            if not isinstance(tools, list) or any(x not in names for x in tools):
                raise ValueError(f"turns[{i}].tools: use only these function names: {sorted(names)}")
        if not any(t.get("tools") for t in turns):
            raise ValueError("at least one turn must need a function")
    return check


class ToolflowStage(LLMStage):
    """One dialog per input row (`make_inputs`), generated lazily from (graph, seed, index)."""

    name = STAGE
    reads = ("id", "subgraph")

    def __init__(self, config, specs: dict[str, dict[str, Any]]):
        super().__init__(config)  # graph, n, seed, dialog, llm
        self.specs = specs  # by node id: shipped to the workers once

    def llm(self):
        from raypipe.synth.diversity import DEFAULT_TEMPERATURE

        return self.config.llm.with_default_temperature(DEFAULT_TEMPERATURE)

    def inputs(self) -> list[str]:
        return [self.config.graph]

    def source(self, *, use_ray: bool = True, allow_incomplete: bool = False):
        cfg = self.config
        if not use_ray:
            from raypipe.synth.toolgraph import load_graph

            return make_inputs(load_graph(cfg.graph), cfg.n, cfg.seed, cfg.dialog)
        import ray.data

        return ray.data.range(cfg.n).map_batches(
            _inputs_of_range, fn_kwargs={"graph_dir": cfg.graph, "seed": cfg.seed, "dialog": cfg.dialog},
            batch_format="pyarrow", batch_size=1000)

    async def program(self, row: dict[str, Any], client) -> dict[str, Any]:
        from raypipe.llm import RowError
        from raypipe.synth.diversity import DialogClient, persona, request_seed

        cfg, seed = self.config.dialog, self.config.seed
        client = DialogClient(client, request_seed(seed, row["id"]))
        who = persona(seed, row["id"])
        subgraph = json.loads(row["subgraph"])
        functions = [self.specs[t] for t in subgraph["tools"]]
        names = {f["name"] for f in functions}
        if cfg.plan:
            plan = await client.chat_json(
                [
                    {"role": "system", "content": PLANNER_SYSTEM.format(
                        min_turns=cfg.min_turns, max_turns=cfg.max_turns)},
                    {"role": "user", "content": f"{who}\n\n{specs_block(functions)}"},
                ],
                validate=_plan_validator(names, cfg),
            )
        else:
            plan = {"turns": unplanned_turns(row["id"], [f["name"] for f in functions], cfg)}
        messages: list[Message] = []
        turns_meta = []
        for h, turn in enumerate(plan["turns"]):
            user_text = (await client.chat([
                {"role": "system", "content": USER_SYSTEM},
                {"role": "user", "content": f"{who}\n\nCONVERSATION SO FAR:\n{transcript(messages)}\n\n"
                                            f"INTENT OF YOUR NEXT MESSAGE: {turn['intent']}"},
            ])).text.strip()
            if not user_text:
                raise RowError(f"turn {h}: the user agent wrote an empty message")
            messages.append(Message("user", user_text))
            called: list[str] = []
            repairs = 0
            for step in range(cfg.max_steps_per_turn):
                last = step == cfg.max_steps_per_turn - 1
                hint = "\n\nThe results are in: answer the user now, without calls." if last else ""
                prompt = [
                    {"role": "system", "content": ASSISTANT_SYSTEM},
                    {"role": "user", "content": f"{specs_block(functions)}\n\nCONVERSATION SO FAR:\n"
                                                f"{transcript(messages)}{hint}"},
                ]
                expect = _no_calls if last else None
                msg, repaired = await checked_assistant_turn(
                    client, prompt, functions, messages, f"t{h}s{step}", f"turn {h} step {step}", expect)
                repairs += int(repaired)
                messages.append(msg)
                if not msg.tool_calls:
                    break
                called += [c.name for c in msg.tool_calls]
                messages += await simulate_results(client, functions, messages, msg.tool_calls)
            turns_meta.append({"planned": turn.get("tools", []), "called": called, "repairs": repairs})
        sample = Sample(  # the id is the content's: copies are found by the mix step's dedup
            functions=functions, messages=messages, source=STAGE,
            meta={"dialog_id": row["id"], "persona": who, "plan": plan["turns"] if cfg.plan else None,
                  "subgraph": subgraph, "turns": turns_meta},
            lineage=[Lineage(stage=STAGE, parent_id=row["id"])],
        )
        return checked_row(sample)


_GRAPHS: dict[str, ToolGraph] = {}  # per worker process: each graph is read once


def _inputs_of_range(batch, graph_dir: str, seed: int, dialog: DialogConfig):
    """Ray Data: dialog indices -> input rows (the graph loaded once per worker process)."""
    import pyarrow as pa

    from raypipe.synth.toolgraph import load_graph

    if graph_dir not in _GRAPHS:
        _GRAPHS[graph_dir] = load_graph(graph_dir)
    graph = _GRAPHS[graph_dir]
    rows = [make_inputs(graph, 1, seed, dialog, int(i))[0] for i in batch.column("id").to_pylist()]
    return pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("subgraph", pa.string())]))


def _no_calls(msg: Message) -> list[str]:
    return ["this turn must answer the user in text, without calls"] if msg.tool_calls else []

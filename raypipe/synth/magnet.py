"""MAGNET: multi-turn trajectories translated from function signature paths (FSP).

Per path (one input row, one run of `MagnetStage.program` by the engine's executor), turn by turn:

- **back-translation** M_b(fs_h) = u_h: the user message that this signature step answers,
  shaped by the step's node operation (an ``insert`` turn never names the prerequisite, a
  ``merge`` turn asks for both things at once, an ``ask`` turn leaves out one required value,
  an ``answer`` turn gives it);
- **forth-translation** M_f(t_{h-1}, u_h, fs_h) = a_h: the assistant action given the previous
  tool result, the user turn and the signature: a call of the step's function with arguments from
  the conversation, or, at an ``ask`` turn, a question for the missing value. Checked by the
  validator and against the signature; repaired once or the path is rejected with the reason;
- tool results are simulated as in ToolFlow; each turn with calls ends with a short answer.

`meta["actions"]` records every assistant message (index, kind, op, calls, missing, whether it
is a prerequisite call): what `raypipe.synth.trajectories` corrupts into mDPO pairs.
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
from raypipe.synth.fsp_ops import FspTurn, OpsConfig, apply_random_ops, fsp_functions, random_walk_fsp
from raypipe.synth.sampling import dialog_rng
from raypipe.synth.toolgraph import ToolGraph

STAGE = "magnet"
WALK_KINDS = ("magnet",)  # MAGNET's judge-approved same-domain edges

BACK_SYSTEM = (
    "You write the user's side of a conversation with an AI assistant that can call functions "
    "(back-translation of a function signature into a user request). Write the user's next "
    "message so that answering it needs exactly the function call(s) described in the TASK, "
    "fits the conversation so far, sounds like a real person (concise, no function names), and "
    "gives concrete values for the arguments unless the TASK says to leave one out. Reply with "
    "the message text only."
)

FORTH_SYSTEM = (
    "You are an assistant that can call functions (forth-translation of a user request into an "
    "action). Given the conversation, the latest tool result and the function signature this "
    "step needs, produce the next action: call that function with every argument value taken "
    "from the conversation or earlier tool results, or, if a required value was never given, ask "
    "the user for it instead of guessing. " + ACTION_FORMAT
)

REPLY_SYSTEM = (
    "You are a helpful assistant. The function results for the user's latest request are in "
    "the conversation. Answer the user briefly and naturally from those results. Reply with the "
    "answer text only."
)


@dataclass
class PathConfig:
    min_length: int = 2  # fs_1..fs_H before node operations
    max_length: int = 4
    distractors: int = 2  # extra functions offered in each dialog (what unrelated calls pick)
    ops: OpsConfig = field(default_factory=OpsConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("need 1 <= min_length <= max_length")


def make_inputs(graph: ToolGraph, n: int, seed: int, cfg: PathConfig,
                start: int = 0) -> list[dict[str, Any]]:
    """Rows for paths start..start+n-1: walk, node operations, distractor functions; all seeded
    per path id. Rows carry node ids only: the specs travel once, in the program."""
    rows = []
    for i in range(start, start + n):
        pid = f"magnet-{seed}-{i:08d}"
        rng = dialog_rng(seed, pid)
        fsp = random_walk_fsp(graph, rng, rng.randint(cfg.min_length, cfg.max_length), WALK_KINDS)
        fsp = apply_random_ops(fsp, graph, rng, cfg.ops)
        used = fsp_functions(fsp)
        names = {graph.name(x) for x in used}
        extra: list[str] = []
        for _ in range(20 * cfg.distractors):  # rejection sampling: O(distractors), not O(pool)
            if len(extra) >= cfg.distractors:
                break
            x = rng.choice(graph.node_ids)
            if graph.name(x) not in names:
                extra.append(x)
                names.add(graph.name(x))
        rows.append({"id": pid, "fsp": json.dumps([t.to_dict() for t in fsp]),
                     "tools": json.dumps([*used, *extra])})
    return rows


def signature_text(spec: dict[str, Any], missing: str | None = None) -> str:
    """get_distance(from_loc: string, to_loc: string); a missing argument shows as `?`."""
    params = (spec.get("parameters") or {}).get("properties") or {}
    args = ", ".join(("?" if p == missing else f"{p}: {s.get('type', 'any')}") for p, s in params.items())
    return f"{spec['name']}({args}) - {spec.get('description', '')}"


def task_text(turn: FspTurn, specs: dict[str, dict], names: dict[str, str],
              follow: FspTurn | None = None) -> str:
    """What the back-translation must make the user ask for. An ``ask`` turn asks for what its
    ``answer`` turn (`follow`) will call, leaving out the missing value."""
    if turn.op == "ask":
        fn, arg = turn.missing
        request = _request_text(follow, specs, names, turn.missing) if follow else (
            f"The user wants what {signature_text(specs[names[fn]], arg)} gives.")
        return (f"{request} The user does NOT give any value for `{arg}` of {names[fn]} (the "
                "assistant will have to ask for it).")
    if turn.op == "answer":
        fn, arg = turn.missing
        return (f"The assistant just asked for `{arg}` of {names[fn]}. The user answers with a "
                f"concrete value for `{arg}` and nothing else new.")
    return _request_text(turn, specs, names, None)


def _request_text(turn: FspTurn, specs: dict[str, dict], names: dict[str, str],
                  missing: tuple[str, str] | None) -> str:
    """The request by the shape of the turn's calls: one call, a prerequisite chain, or two asks."""
    def sig(node: str) -> str:
        arg = missing[1] if missing and missing[0] == node else None
        return signature_text(specs[names[node]], arg)

    if turn.feeds and len(turn.calls) > 1:
        pre, main = turn.calls[0], turn.calls[-1]
        return (f"The user wants the result of {sig(main)}. They do not know the value "
                f"`{turn.feeds.split('->')[-1]}` needs, but give what {sig(pre)} needs to "
                "find it. Do not mention that first step.")
    if len(turn.calls) > 1:
        return "In one message the user asks for two things: " + " AND ".join(sig(c) for c in turn.calls)
    return f"The user asks for something that needs: {sig(turn.calls[0])}"


class MagnetStage(LLMStage):
    """One trajectory per input row (`make_inputs`), generated lazily from (graph, seed, index)."""

    name = STAGE
    reads = ("id", "fsp", "tools")

    def __init__(self, config, specs: dict[str, dict[str, Any]]):
        super().__init__(config)  # graph, n, seed, path, llm
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

            return make_inputs(load_graph(cfg.graph), cfg.n, cfg.seed, cfg.path)
        import ray.data

        return ray.data.range(cfg.n).map_batches(
            _inputs_of_range, fn_kwargs={"graph_dir": cfg.graph, "seed": cfg.seed, "path": cfg.path},
            batch_format="pyarrow", batch_size=1000)

    async def program(self, row: dict[str, Any], client) -> dict[str, Any]:
        from raypipe.llm import RowError
        from raypipe.synth.diversity import DialogClient, persona, request_seed

        specs_by_node = self.specs
        client = DialogClient(client, request_seed(self.config.seed, row["id"]))
        who = persona(self.config.seed, row["id"])
        fsp = [FspTurn.from_dict(d) for d in json.loads(row["fsp"])]
        tools = json.loads(row["tools"])
        functions = [specs_by_node[t] for t in tools]
        names = {t: specs_by_node[t]["name"] for t in tools}  # node id -> function name
        specs = {f["name"]: f for f in functions}
        messages: list[Message] = []
        actions: list[dict[str, Any]] = []
        for h, turn in enumerate(fsp):
            follow = fsp[h + 1] if h + 1 < len(fsp) else None
            user = (await client.chat([
                {"role": "system", "content": BACK_SYSTEM},
                {"role": "user", "content": f"{who}\n\nCONVERSATION SO FAR:\n{transcript(messages)}\n\n"
                                            f"TASK: {task_text(turn, specs, names, follow)}"},
            ])).text.strip()
            if not user:
                raise RowError(f"turn {h}: back-translation wrote an empty user message")
            messages.append(Message("user", user))
            steps = [None] if turn.op == "ask" else [names[c] for c in turn.calls]
            for k, fn in enumerate(steps):
                want = (signature_text(specs[names[turn.missing[0]]], turn.missing[1])
                        + f"  (`{turn.missing[1]}` was not given: ask the user for it)"
                        if fn is None else signature_text(specs[fn]))
                prompt = [
                    {"role": "system", "content": FORTH_SYSTEM},
                    {"role": "user", "content": f"{specs_block(functions)}\n\nCONVERSATION SO FAR:\n"
                                                f"{transcript(messages)}\n\nTHIS STEP NEEDS: {want}"},
                ]
                msg, _ = await checked_assistant_turn(
                    client, prompt, functions, messages, f"t{h}s{k}", f"turn {h} step {k}",
                    _expect_question if fn is None else _expect_call(fn))
                actions.append({
                    "message": len(messages), "kind": "ask" if fn is None else "call", "op": turn.op,
                    "calls": [names[c] for c in turn.calls],
                    "missing": [names.get(turn.missing[0]), turn.missing[1]] if turn.missing else None,
                    "prerequisite": bool(turn.feeds) and len(steps) > 1 and k == 0, "feeds": turn.feeds,
                })
                messages.append(msg)
                if msg.tool_calls:
                    messages += await simulate_results(client, functions, messages, msg.tool_calls)
            if turn.op != "ask":
                reply = (await client.chat([
                    {"role": "system", "content": REPLY_SYSTEM},
                    {"role": "user", "content": f"CONVERSATION SO FAR:\n{transcript(messages)}"},
                ])).text.strip()
                if not reply:
                    raise RowError(f"turn {h}: the final answer is empty")
                actions.append({"message": len(messages), "kind": "reply", "op": turn.op, "calls": []})
                messages.append(Message("assistant", reply))
        sample = Sample(  # the id is the content's: copies are found by the mix step's dedup
            functions=functions, messages=messages, source=STAGE,
            meta={"path_id": row["id"], "persona": who, "fsp": [t.to_dict() for t in fsp],
                  "actions": actions},
            lineage=[Lineage(stage=STAGE, parent_id=row["id"])],
        )
        return checked_row(sample)


_GRAPHS: dict[str, ToolGraph] = {}  # per worker process: each graph is read once


def _inputs_of_range(batch, graph_dir: str, seed: int, path: PathConfig):
    """Ray Data: path indices -> input rows (the graph loaded once per worker process)."""
    import pyarrow as pa

    from raypipe.synth.toolgraph import load_graph

    if graph_dir not in _GRAPHS:
        _GRAPHS[graph_dir] = load_graph(graph_dir)
    graph = _GRAPHS[graph_dir]
    rows = [make_inputs(graph, 1, seed, path, int(i))[0] for i in batch.column("id").to_pylist()]
    return pa.Table.from_pylist(rows, schema=pa.schema(
        [("id", pa.string()), ("fsp", pa.string()), ("tools", pa.string())]))


def _expect_question(msg: Message) -> list[str]:
    return ["a required value is missing: ask the user for it, do not call"] if msg.tool_calls else []


def _expect_call(name: str):
    def check(msg: Message) -> list[str]:
        got = [c.name for c in msg.tool_calls]
        return [] if got == [name] else [f"this step must call exactly {name} once, got {got or 'text'}"]
    return check

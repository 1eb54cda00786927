"""A study file and its expansion into per-arm steps.

    study:
      name: table2
      out: runs/paper/table2            # ${out} in any string below
      vars: {model: MediaTek-Research/Breeze-7B-Instruct-v1_0, fc_count: 110000}
      scales:                           # `raypipe run FILE --scale tiny`
        tiny:
          vars: {model: tiny}
          overrides: {fetch_fc: null, train: {num_workers: 0}}
      steps:                            # the base pipeline: a name + one step kind each
        - {name: prep, convert: {out: "${out}/shared/fc", sources: [...]}}
        - {name: train, train_sft: {model: "${model}", format: tools, out: "${out}/${arm}/sft"}}
      metrics: [ast_summary, relevance_detection]
      arms:
        - name: dt
          row: "+ Decision Token"                       # the paper's row
          overrides: {train: {format: tools-dt}}        # step name -> fields merged into it
          paper: {ast_summary: 85.25, relevance_detection: 37.50}   # null: not in the paper
      compare: [[base, dt]]             # the pairs the paper compares (paired tests)

An override of a step is merged into its config (mappings recursively, anything else
replaced); an override of `null` removes the step from that arm. `${name}` is replaced by a var
(`${arm}` and `${out}` are built in; precedence: study vars < the scale's vars < the arm's
vars, which may themselves name study or scale vars); a string that is exactly `${name}` takes the var's value
with its type. Nothing in the file is evaluated.

A step's fingerprint is a hash of its kind and resolved config: arms whose step has the same
fingerprint share one run of it (data prep, negatives); the runner records a finished step by
its fingerprint, which makes every arm resumable per step.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raypipe.config import ConfigError, load_config, short_repr
from raypipe.errors import RaypipeError

METRICS = ("ast_summary", "relevance_detection", "mt_bench")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
STUDY_KEYS = {"name", "description", "paper", "out", "vars", "scales", "steps", "metrics", "arms",
              "compare", "max_concurrent_arms", "ray"}
ARM_KEYS = {"name", "row", "overrides", "paper", "vars"}


@dataclass
class ArmStep:
    name: str  # the step's name in the study file
    kind: str
    raw: dict  # the resolved config as plain data
    fingerprint: str
    config: Any = None  # typed, after `check`


@dataclass
class Arm:
    name: str
    row: str
    paper: dict[str, float | None]
    steps: list[ArmStep] = field(default_factory=list)


@dataclass
class Study:
    name: str
    file: str
    out: str
    scale: str
    metrics: list[str]
    arms: list[Arm]
    compare: list[tuple[str, str]]
    description: str = ""
    paper: str = ""
    max_concurrent_arms: int = 1  # >1: each arm's own steps in its own driver (raypipe.study.runner)
    ray: Any = None  # raypipe.jobs.RayConfig
    scale_arg: str | None = None  # the --scale given (None: the default, full), for the arms' drivers


def is_study_file(path: str | Path) -> bool:
    """A YAML file with a top-level `study:` key (read cheaply; a job file has `steps:`)."""
    from raypipe import safeyaml
    from raypipe.io import fs

    try:
        data, _, _ = safeyaml.load(fs.read_text(str(path)), str(path))
    except (RaypipeError, OSError):
        return False
    return isinstance(data, dict) and "study" in data


def fingerprint(kind: str, raw: dict) -> str:
    text = json.dumps({"kind": kind, "config": raw}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_study(path: str | Path, scale: str | None = None) -> Study:
    """The expanded study; every problem of the file at once in a ConfigError (file:line: field)."""
    from raypipe import safeyaml
    from raypipe.io import fs

    name = str(path)
    if not Path(name).is_file():
        raise RaypipeError(f"{name}: study file not found")
    data, problems, lines = safeyaml.load(fs.read_text(name), name)
    p = _Problems(name, lines, problems)
    spec = data.get("study") if isinstance(data, dict) else None
    if not isinstance(spec, dict):
        raise ConfigError([f"{name}: study: expected a mapping under a top-level `study:` key"])
    for key in sorted(set(spec) - STUDY_KEYS, key=str):
        p.add(f"study.{key}", f"unknown key (known: {', '.join(sorted(STUDY_KEYS))})")
    for key in ("name", "out", "steps", "arms"):
        if key not in spec:
            p.add("study", f"{key}: required key missing")
    if p.problems:
        raise ConfigError(p.problems)

    variables = _mapping(spec, "vars", p, "study.vars")
    scales = _mapping(spec, "scales", p, "study.scales")
    scale_overrides: dict = {}
    if scale is not None:
        if scale not in scales:
            raise RaypipeError(f"{name}: study.scales: no scale {scale!r} (known: {', '.join(map(str, scales)) or 'none'})")
        chosen = scales[scale] if isinstance(scales[scale], dict) else {}
        for key in sorted(set(chosen) - {"vars", "overrides"}, key=str):
            p.add(f"study.scales.{scale}.{key}", "unknown key (known: overrides, vars)")
        variables = {**variables, **_mapping(chosen, "vars", p, f"study.scales.{scale}.vars")}
        scale_overrides = _mapping(chosen, "overrides", p, f"study.scales.{scale}.overrides")
    out = spec["out"]
    if not isinstance(out, str) or not out:
        p.add("study.out", f"expected a folder path, got {short_repr(out)}")
        out = "."

    base = _base_steps(spec["steps"], p)
    for step_name in scale_overrides:
        if step_name not in base:
            p.add(f"study.scales.{scale}.overrides.{step_name}", f"no step named {step_name!r} in study.steps")
    metrics = spec.get("metrics", ["ast_summary", "relevance_detection"])
    if not isinstance(metrics, list) or any(m not in METRICS for m in metrics):
        p.add("study.metrics", f"expected a list of {', '.join(METRICS)}, got {short_repr(metrics)}")
        metrics = []

    arms: list[Arm] = []
    raw_arms = spec["arms"] if isinstance(spec["arms"], list) else []
    if not raw_arms:
        p.add("study.arms", "expected a non-empty list of arms")
    for i, entry in enumerate(raw_arms):
        where = f"study.arms[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            p.add(where, "an arm is a mapping with a name")
            continue
        for key in sorted(set(entry) - ARM_KEYS, key=str):
            p.add(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(ARM_KEYS))})")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", entry["name"]) or entry["name"] in {a.name for a in arms}:
            p.add(f"{where}.name", f"{entry['name']!r}: arm names are unique, name a folder (${arm}) and use "
                  "letters, digits, _ . - (not first)")
        overrides = _mapping(entry, "overrides", p, f"{where}.overrides")
        for step_name in overrides:
            if step_name not in base:
                p.add(f"{where}.overrides.{step_name}", f"no step named {step_name!r} in study.steps")
        paper = _mapping(entry, "paper", p, f"{where}.paper")
        for metric, value in paper.items():
            if metric not in METRICS or not (value is None or isinstance(value, (int, float))):
                p.add(f"{where}.paper.{metric}", f"expected a metric ({', '.join(METRICS)}) with a number "
                      f"or null, got {short_repr(value)}")
        arm = Arm(name=entry["name"], row=str(entry.get("row") or entry["name"]), paper=paper)
        known = {**variables, "arm": arm.name, "out": out}
        # a var may name another (fc_data: ${out}/shared/fc): one level, resolved here
        known = {k: _substitute(v, known, p, f"study.vars.{k}") for k, v in known.items()}
        # an arm's vars may name the scale's (nf_count: "${nf_1k}"): one arm list for every scale
        arm_vars = _substitute(_mapping(entry, "vars", p, f"{where}.vars"), known, p, f"{where}.vars")
        known.update(arm_vars)
        for step_name, (kind, cfg) in base.items():
            merged = cfg
            for layer in (scale_overrides, overrides):
                if step_name in layer:
                    merged = None if layer[step_name] is None or merged is None else _merge(merged, layer[step_name])
            if merged is None:
                continue  # removed in this scale or arm
            resolved = _substitute(merged, known, p, f"{where} step {step_name}")
            arm.steps.append(ArmStep(step_name, kind, resolved, fingerprint(kind, resolved)))
        arms.append(arm)

    compare = []
    names = {a.name for a in arms}
    for i, pair in enumerate(spec.get("compare") or []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(x in names for x in pair)):
            p.add(f"study.compare[{i}]", f"expected a pair of arm names, got {short_repr(pair)}")
        else:
            compare.append((pair[0], pair[1]))
    concurrent = spec.get("max_concurrent_arms", 1)
    if not isinstance(concurrent, int) or isinstance(concurrent, bool) or concurrent < 1:
        p.add("study.max_concurrent_arms", f"expected a whole number >= 1, got {short_repr(concurrent)}")
        concurrent = 1
    _check_outputs(arms, p)
    from raypipe.jobs import RayConfig

    ray = RayConfig()
    try:
        ray = load_config(RayConfig, spec.get("ray") or {}, where="study.ray", file=name)
    except ConfigError as exc:
        p.problems.extend(exc.problems)
    if p.problems:
        raise ConfigError(list(dict.fromkeys(p.problems)))  # a base step's problem is every arm's
    return Study(name=str(spec["name"]), file=name, out=out, scale=scale or "full", metrics=metrics,
                 arms=arms, compare=compare, description=str(spec.get("description") or ""),
                 paper=str(spec.get("paper") or ""), ray=ray, max_concurrent_arms=concurrent,
                 scale_arg=scale)


def check_study(study: Study) -> None:
    """Type every arm's steps (the registered configs) and run the job preflight (paths) on
    each arm as if it were a job; every problem at once in a ConfigError."""
    from raypipe.commands import all_steps
    from raypipe.jobs import PlannedStep, by_line
    from raypipe.preflight import check_job

    registry = all_steps()
    problems: list[str] = []
    for arm in study.arms:
        planned = []
        for s in arm.steps:
            where = f"arms.{arm.name}.steps.{s.name}.{s.kind}"
            try:
                s.config = load_config(registry[s.kind].config, s.raw, where=where, file=study.file)
            except ConfigError as exc:
                problems.extend(exc.problems)
                s.config = None
            planned.append(PlannedStep(label=f"{s.name}:{s.kind}", step=registry[s.kind], config=s.config,
                                       file=study.file, raw=s.raw))
        problems += [f"arm {arm.name}: {x}" for x in check_job(planned)]
    if problems:
        raise ConfigError(by_line(list(dict.fromkeys(problems))))


class _Problems:
    def __init__(self, file: str, lines: dict[str, int], problems: list[str]):
        self.file, self.lines, self.problems = file, lines, list(problems)

    def add(self, where: str, message: str) -> None:
        line = self.lines.get("." + where)
        self.problems.append(f"{self.file}:{line}: {where}: {message}" if line else f"{self.file}: {where}: {message}")


def _mapping(data: dict, key: str, p: _Problems, where: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        p.add(where, f"expected a mapping, got {type(value).__name__}")
        return {}
    return value


def _base_steps(steps: Any, p: _Problems) -> dict[str, tuple[str, dict]]:
    from raypipe.commands import all_steps

    registry = all_steps()
    base: dict[str, tuple[str, dict]] = {}
    if not isinstance(steps, list):
        p.add("study.steps", "expected a list of steps")
        return base
    for i, entry in enumerate(steps):
        where = f"study.steps[{i}]"
        kinds = [k for k in entry if k != "name"] if isinstance(entry, dict) else []
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or len(kinds) != 1:
            p.add(where, "a step is a mapping with a name and one step kind: {name: prep, convert: {...}}")
            continue
        kind = kinds[0]
        if kind not in registry:
            p.add(f"{where}.{kind}", f"unknown step kind (known: {', '.join(sorted(registry))})")
            continue
        if entry["name"] in base:
            p.add(f"{where}.name", f"step name {entry['name']!r} is used twice")
            continue
        if not isinstance(entry[kind], dict):
            p.add(f"{where}.{kind}", "expected a mapping of the step's config")
            continue
        base[entry["name"]] = (kind, entry[kind])
    return base


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def _substitute(value: Any, known: dict, p: _Problems, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, known, p, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, known, p, where) for v in value]
    if not isinstance(value, str):
        return value
    whole = VAR.fullmatch(value)
    if whole and whole.group(1) in known:
        return copy.deepcopy(known[whole.group(1)])

    def one(m: re.Match) -> str:
        if m.group(1) not in known:
            p.add(where, f"${{{m.group(1)}}}: no such var (known: {', '.join(sorted(known))})")
            return m.group(0)
        return str(known[m.group(1)])

    return VAR.sub(one, value)


def _check_outputs(arms: list[Arm], p: _Problems) -> None:
    """Two different configs writing one `out` would overwrite each other's results (and the
    second would be skipped as 'done' by the first's record)."""
    writers: dict[str, tuple[str, str, str]] = {}
    for arm in arms:
        for s in arm.steps:
            out = s.raw.get("out")
            if not isinstance(out, str):
                continue
            seen = writers.setdefault(out, (s.fingerprint, arm.name, s.name))
            if seen[0] != s.fingerprint:
                p.add(f"study.steps {s.name}", f"arms {seen[1]} and {arm.name} write {out} with different "
                      "configs; put ${arm} in its out")

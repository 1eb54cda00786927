"""`import raypipe` and building the whole CLI must stay light: no torch, DeepSpeed, vLLM or Ray."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ["torch", "deepspeed", "vllm", "ray", "transformers", "peft"]


def test_import_raypipe_and_building_the_cli_loads_no_heavy_module():
    code = (
        "import sys, json\n"
        "import raypipe, raypipe.cli, raypipe.io, raypipe.data\n"
        "raypipe.cli.build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing raypipe / building the CLI imported {loaded}"


def _import_graph() -> dict[str, set[str]]:
    """raypipe's modules and the raypipe modules each imports, read from the source (imports
    inside functions count: a lazy import still ties the two modules together)."""
    import ast
    from pathlib import Path

    import raypipe

    root = Path(raypipe.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = ("raypipe", *path.relative_to(root).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def module_of(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(module_of(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets.update(module_of(f"{base}.{a.name}") or module_of(base) for a in node.names)
        graph[name] = {t for t in targets if t and t != name}
    return graph


def test_production_modules_import_no_test_helper():
    offenders = {m: sorted(t for t in targets if t.startswith("raypipe.testing"))
                 for m, targets in _import_graph().items() if not m.startswith("raypipe.testing")}
    assert not {m: t for m, t in offenders.items() if t}


def test_raypipe_has_no_import_cycle():
    graph = _import_graph()
    # Tarjan's strongly connected components, iteratively: any component of 2+ modules is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, f"import cycles: {cycles}"

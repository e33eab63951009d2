"""The house's one-way imports, read from the source with ``ast`` (README, "Layout"):

    train.py, benchmarks → jobs → {agents, peers} → envs;   report reads run files only

Nothing imports the entry script ``train.py``, and nothing edits ``sys.path``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("agents", "envs", "jobs", "peers", "report", "benchmarks")
#: room -> the rooms of ours it may import (besides itself)
MAY_IMPORT = {
    "envs": set(),
    "agents": {"envs"},
    "peers": {"envs", "agents"},  # agents: only PEER_SEES_OF_AGENTS
    "jobs": {"agents", "peers", "envs"},
    "report": set(),  # reads run dirs; imports nothing that trains
    "benchmarks": {"agents", "envs", "jobs", "peers", "report"},
    "train": {"jobs"},
}
#: what the peer may use of agents: the shared run scaffolding, and our learner's config (to tell
#: its keys, which an env config may set, from mistakes)
PEER_SEES_OF_AGENTS = {"agents.runs", "agents.checkpoint", "agents.learner_config"}
OURS = {*ROOMS, "train", "tests"}


def sources() -> dict[str, list[Path]]:
    """room -> its Python files (``train`` the entry script, ``tests`` the tests)."""
    rooms = {room: sorted((ROOT / room).rglob("*.py")) for room in (*ROOMS, "tests")}
    return {**rooms, "train": [ROOT / "train.py"]}


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the file's package, up level - 1
                package = path.parent.relative_to(ROOT).parts
                module = ".".join([*package[: len(package) - node.level + 1], *filter(None, [module])])
            found += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return found


def _agents_module(module: str) -> str | None:
    """``agents.x`` for a module ``agents.x`` or a name imported from it, else None."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agents" and len(parts) > 1 else None


def test_every_room_has_files():
    assert all(sources()[room] for room in (*ROOMS, "train", "tests"))


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_imports_run_one_way(room):
    allowed = MAY_IMPORT[room] | {room}
    wrong = []
    for path in sources()[room]:
        for module in imports(path):
            top = module.split(".")[0]
            if top in OURS and top not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
            elif room == "peers" and _agents_module(module) not in (None, *PEER_SEES_OF_AGENTS):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")  # e.g. our learner's loop
    assert wrong == []


def test_the_report_parts_import_each_other_without_a_circle():
    graph = {
        path.stem: {m.split(".")[1] for m in imports(path) if m.startswith("report.") and m.count(".") >= 1}
        for path in sources()["report"]
    }
    graph = {part: {dep for dep in deps if dep in graph and dep != part} for part, deps in graph.items()}
    assert graph["records"] == set()  # the record types are a leaf

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep})) for dep in graph[start]
        )

    assert [part for part in graph if reaches(part, part, set())] == []


def test_nothing_imports_the_entry_script():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for files in sources().values()
        for path in files
        for module in imports(path)
        if module.split(".")[0] == "train"
    ]
    assert offenders == []


def edits_sys_path(path: Path) -> list[int]:
    """Lines that change ``sys.path``: a call of its methods, or an assignment to it."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif isinstance(node, ast.Assign | ast.AugAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if (
            isinstance(target, ast.Attribute)
            and target.attr == "path"
            and isinstance(target.value, ast.Name)
            and target.value.id == "sys"
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_nothing_edits_sys_path():
    edits = {
        str(path.relative_to(ROOT)): lines
        for files in sources().values()
        for path in files
        if (lines := edits_sys_path(path))
    }
    assert edits == {}


def test_the_checks_catch_what_they_forbid(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sys\nsys.path.insert(0, '.')\nsys.path += ['x']\n\ndef f():\n    from train import build\n"
    )
    assert edits_sys_path(bad) == [2, 3]
    assert "train" in imports(bad) and "train.build" in imports(bad)
    # a relative import is resolved from the file's package
    assert "tests.rules.helpers" in imports(ROOT / "tests" / "rules" / "test_carry.py")

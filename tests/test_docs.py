"""The docs that the code cites exist: every ``docs/algorithms.md §n`` names a section there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/algorithms\.md ((?:§\d+(?:–\d+)?(?:, )?)+)")


def our_files() -> list[Path]:
    """README and the Python files of the packages, the tests and the top-level scripts (not the
    run dirs or a virtual env that may sit in the tree)."""
    dirs = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() or d.name == "tests"]
    return [ROOT / "README.md", *ROOT.glob("*.py"), *(p for d in dirs for p in d.rglob("*.py"))]


def cited_sections() -> dict[int, list[str]]:
    """section -> the files that cite it."""
    cited: dict[int, list[str]] = {}
    for path in our_files():
        for match in CITATION.finditer(path.read_text()):
            for first, last in re.findall(r"§(\d+)(?:–(\d+))?", match.group(1)):
                for n in range(int(first), int(last or first) + 1):
                    cited.setdefault(n, []).append(str(path.relative_to(ROOT)))
    return cited


def test_cited_sections_of_the_algorithms_exist():
    doc = (ROOT / "docs" / "algorithms.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", doc, re.M)}
    cited = cited_sections()
    assert {1, 2, 5, 7} <= set(cited)  # the scan finds the docstrings' citations
    assert {n: files for n, files in cited.items() if n not in sections} == {}


def test_no_citation_of_notes_outside_the_repository():
    offenders = [
        str(p.relative_to(ROOT))
        for p in our_files()
        if p != Path(__file__).resolve() and "ALGORITHMS.md" in p.read_text()
    ]
    assert offenders == []

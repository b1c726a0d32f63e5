"""The house rule that keeps data flowing one way: analysis/ never imports the bot."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
FORBIDDEN = ("bot", "slack_bolt", "slack_sdk", "jinja2")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(ANALYSIS.rglob("*.py")), ids=lambda p: p.name)
def test_analysis_does_not_import_bot_slack_or_jinja(path: Path) -> None:
    assert not _imports(path) & set(FORBIDDEN), f"{path} imports {_imports(path) & set(FORBIDDEN)}"


def test_the_check_sees_imports(tmp_path: Path) -> None:
    # guards the guard: a file importing the bot must be caught
    sample = tmp_path / "sample.py"
    sample.write_text("from bot import reports\nimport jinja2\n")
    assert _imports(sample) >= {"bot", "jinja2"}

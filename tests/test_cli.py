"""The command line's structure: every command lives in polyir/commands/, and a command module that does
not import stops the CLI loudly (naming the module) instead of vanishing from ``--help``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import polyir.cli as cli
import polyir.commands

CLI_SOURCE = Path(cli.__file__)


def test_a_broken_command_module_fails_naming_itself(tmp_path, monkeypatch):
    (tmp_path / "broken_for_test.py").write_text("import polyir_no_such_dependency\n", encoding="utf-8")
    monkeypatch.setattr(polyir.commands, "__path__", [*polyir.commands.__path__, str(tmp_path)])
    with pytest.raises(ImportError, match=r"polyir\.commands\.broken_for_test.*polyir_no_such_dependency"):
        cli._module("broken_for_test")
    sys.modules.pop("polyir.commands.broken_for_test", None)


def test_the_cli_does_not_start_when_a_command_module_is_broken(tmp_path):
    """In a fresh interpreter: one command module that raises ImportError stops ``polyir --help``."""
    script = (
        "import sys, types, importlib.abc, importlib.machinery\n"
        "class Broken(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'polyir.commands.merge':\n"
        "            raise ImportError('No module named polyir_missing_dependency')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "import polyir.cli\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "polyir command module polyir.commands.merge does not import" in result.stderr


def _handlers_that_swallow_import_errors(tree: ast.AST) -> list[int]:
    """Line numbers of ``except ImportError`` (or ModuleNotFoundError) handlers that do not re-raise."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ExceptHandler) or node.type is None:
            continue
        names = [n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)]
        if {"ImportError", "ModuleNotFoundError"} & set(names):
            if not any(isinstance(n, ast.Raise) for n in ast.walk(node)):
                lines.append(node.lineno)
    return lines


def test_cli_swallows_no_import_error():
    assert _handlers_that_swallow_import_errors(ast.parse(CLI_SOURCE.read_text(encoding="utf-8"))) == []


def test_every_command_is_defined_in_polyir_commands():
    commands = [c for c in cli.app.registered_commands]
    assert {c.name for c in commands} >= {"evaluate", "compare", "models", "train", "report"}
    for command in commands:
        target = getattr(command.callback, "__wrapped__", command.callback)
        assert target.__module__.startswith("polyir.commands."), (command.name, target.__module__)
    for group in cli.app.registered_groups:
        for command in group.typer_instance.registered_commands:
            target = getattr(command.callback, "__wrapped__", command.callback)
            assert target.__module__.startswith("polyir.commands."), (group.name, command.name)

"""The README starts with the two set-up commands, and CI runs the second one."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```bash", "the README must open with the two commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = _commands()
    assert len(commands) == 2
    assert commands[0].endswith("shortlist quickstart")
    assert "pytest" in commands[1]
    for cmd in commands:
        assert (
            "pip install torch==2.13.0" in cmd
        )  # CPU build first, before the project's torch>=2.4


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci

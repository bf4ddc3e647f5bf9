"""Every offline command of the README runs, exactly as written, and does what the README says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.readme_commands import (
    NEEDS_BROKER,
    NOT_RUN,
    ROOT,
    base,
    broker_commands,
    offline_commands,
    readme_commands,
)


def test_the_extractor_joins_continuations_and_skips_comments() -> None:
    text = "x\n```bash\n# a comment\necho 'a' \\\n  | cat   # piped\nls\n```\n```\nnot bash\n```\n"
    assert readme_commands(text) == ["echo 'a' \\\n  | cat   # piped", "ls"]
    assert base(readme_commands(text)[0]) == "echo 'a' \n  | cat"


def test_every_readme_command_is_accounted_for() -> None:
    commands = [base(c) for c in readme_commands()]
    assert set(NOT_RUN) <= set(commands), "a command listed as not run is no longer in the README"
    assert set(NEEDS_BROKER) == {base(c) for c in broker_commands()}, "a broker command left the README"
    assert len(offline_commands()) >= 5


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> list[subprocess.CompletedProcess[str]]:
    """Run the offline commands in order, in a scratch folder that sees the repo's .venv and examples."""
    work = tmp_path_factory.mktemp("readme")
    for name in (".venv", "examples", "schemas", "docs"):
        (work / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = []
    for command in offline_commands():
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"README command failed ({result.returncode}):\n{command}\n{result.stderr}"
        )
        done.append(result)
    return done


def _output_of(
    outputs: list[subprocess.CompletedProcess[str]], needle: str
) -> subprocess.CompletedProcess[str]:
    commands = offline_commands()
    return outputs[next(i for i, c in enumerate(commands) if needle in c)]


def test_every_offline_readme_command_exits_0(outputs: list[subprocess.CompletedProcess[str]]) -> None:
    assert len(outputs) == len(offline_commands())


def test_the_score_example_prints_a_table(outputs: list[subprocess.CompletedProcess[str]]) -> None:
    result = _output_of(outputs, "rapport score")
    rows = result.stdout.splitlines()
    assert rows[0].split()[:4] == ["line", "instrument", "total", "band"]
    assert rows[1].split()[:4] == ["1", "PHQ-9", "9", "mild"]
    assert result.stderr == ""


def test_the_signals_example_shows_what_the_readme_says(
    outputs: list[subprocess.CompletedProcess[str]],
) -> None:
    result = _output_of(outputs, "rapport signals")
    assert result.stderr == "", "the README's own example has nothing rejected"
    rows = result.stdout.split("\n\n")[0].splitlines()[1:]  # the table, without its closing count
    assert {(row.split()[0], row.split()[5]) for row in rows} == {
        ("2", "critical_item"),
        ("2", "outcome_reliable_deterioration"),
    }


def test_the_backtest_compares_with_the_shipped_strict_rule_set(
    outputs: list[subprocess.CompletedProcess[str]],
) -> None:
    result = _output_of(outputs, "rapport backtest")
    assert "rule set B: example-strict.1" in result.stdout
    assert "flagged (>= moderate" in result.stdout


def test_the_schema_check_passes(outputs: list[subprocess.CompletedProcess[str]]) -> None:
    assert "schemas up to date" in _output_of(outputs, "schemas check").stdout


def test_the_strict_example_rule_set_loads_and_differs_from_the_default() -> None:
    from shared.rules.config import load_rulebook

    strict = load_rulebook(Path(ROOT / "examples" / "ruleset-strict.yaml")).for_clinic(None)
    default = load_rulebook(None).for_clinic(None)
    assert strict.version == "example-strict.1" != default.version
    assert strict.rules.alliance_drop.k_sd == 1.0 < default.rules.alliance_drop.k_sd

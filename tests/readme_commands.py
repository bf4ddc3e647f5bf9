"""The README's commands, extracted from its ``bash`` code blocks so the README cannot drift.

A command is one logical line of a code block (backslash continuations joined); comment-only lines are
skipped. Every command is run, exactly as written, by ``tests/unit/test_readme.py`` (offline ones) or
``tests/e2e/test_readme_broker.py`` (those that need a broker) — except the ones in ``NOT_RUN``, each with
the reason. A new README command that fits neither list is run offline: nothing is skipped silently.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: Commands a test cannot run, and why.
NOT_RUN: dict[str, str] = {
    "make test": "it runs this test suite (CI runs it: .ci/run)",
}

#: Commands that need a Kafka broker: run against the test broker, with its address and a namespace in
#: the environment, by tests/e2e/test_readme_broker.py (in this order).
NEEDS_BROKER: tuple[str, ...] = (
    "make demo",
    ".venv/bin/rapport topics apply --partitions 24",
    ".venv/bin/rapport dead-letters replay --reason unknown_instrument --dry-run",
)

_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_commands(text: str | None = None) -> list[str]:
    """Every command of the README's ``bash`` blocks, in order, as written (trailing comments kept)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands: list[str] = []
    for block in _BLOCK.findall(text):
        logical = ""
        for line in block.splitlines():
            if line.endswith("\\"):
                logical += line + "\n"  # bash joins a backslash-newline: kept as written
                continue
            logical += line
            if logical.strip() and not logical.lstrip().startswith("#"):
                commands.append(logical)
            logical = ""
    return commands


def base(command: str) -> str:
    """The command without a trailing ``# comment`` (for matching against the lists above)."""
    return re.sub(r"\s+#[^'\"]*$", "", command).replace("\\\n", "\n").strip()


def offline_commands() -> list[str]:
    """The README commands the unit test runs: all but ``NOT_RUN`` and ``NEEDS_BROKER``."""
    return [c for c in readme_commands() if base(c) not in NOT_RUN and base(c) not in NEEDS_BROKER]


def broker_commands() -> list[str]:
    """The README commands that need a broker, as written."""
    return [c for c in readme_commands() if base(c) in NEEDS_BROKER]

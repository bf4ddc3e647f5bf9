"""Shared fixtures of the instrument tests: golden cases, the clinic spec directory, a registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.instruments import InstrumentSpec, Registry, load_registry

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
FIXTURES = HERE / "fixtures"
CLINIC_DIR = FIXTURES / "clinic"
BROKEN_DIR = FIXTURES / "broken"


def golden_cases() -> list[dict[str, Any]]:
    """Every golden case of every instrument, in file order."""
    cases = []
    for path in sorted(GOLDEN.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                case = json.loads(line)
                case["id"] = f"{path.stem}:{n}:{case['case']}"
                cases.append(case)
    return cases


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The packaged specs plus the clinic-supplied OQ-45 fixture."""
    return load_registry(extra_dirs=[CLINIC_DIR])


def spec_for(registry: Registry, case: dict[str, Any]) -> InstrumentSpec:
    """The spec a golden case is scored with (its variant applied, if any)."""
    spec = registry[case["instrument"]]
    return spec.with_variant(case["variant"]) if case.get("variant") else spec

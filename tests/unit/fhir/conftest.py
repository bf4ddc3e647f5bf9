"""The independent FHIR validators (npm, installed per test session into a throwaway folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway_support import install_validator


@pytest.fixture(scope="session")
def fhir_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``node_modules`` holding FHIR.js and the HL7 R4 JSON-schema validator."""
    return install_validator(tmp_path_factory.mktemp("fhir-validator"))

"""Reading a clinic directory file (YAML) for ``rapport directory load|check``.

The file holds ``clinics:``, a list of :class:`~shared.contracts.alerts.ClinicDirectory` entries; see
``examples/directory.yaml``. Errors name the clinic (by position and id) and the field, never a value.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.contracts.alerts import ClinicDirectory


class DirectoryError(ValueError):
    """The directory file cannot be used; the message says where."""


def parse_directory(text: str, origin: str = "<directory>") -> list[ClinicDirectory]:
    """Validate a directory document; every clinic id at most once."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise DirectoryError(f"{origin}: not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("clinics"), list):
        raise DirectoryError(f"{origin}: expected a mapping with a list under 'clinics'")
    out: list[ClinicDirectory] = []
    for n, item in enumerate(data["clinics"], start=1):
        try:
            out.append(ClinicDirectory.model_validate(item))
        except ValidationError as exc:
            where = item.get("clinic_id") if isinstance(item, dict) else None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<clinic>'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise DirectoryError(f"{origin}: clinic #{n} ({where or 'no clinic_id'}): {problems}") from None
    ids = [c.clinic_id for c in out]
    if len(ids) != len(set(ids)):
        raise DirectoryError(f"{origin}: a clinic is listed twice")
    return out


def load_directory(path: str | Path) -> list[ClinicDirectory]:
    """Read and validate a directory file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return parse_directory(text, str(p))

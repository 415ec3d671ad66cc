"""The seed publications' texts, for the tests that check a cited figure where it is printed.

The texts are not part of the repository: they sit beside it in ``../shared/seeds/`` on the
development machines (file ``000_*`` is Ozen 2023, ``001_*`` Ahmadilivani 2025), and the tests
that read them are skipped elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "seeds"

#: The seed files' name prefixes, by the citation key the code uses.
FILES = {"Ozen 2023": "000_", "Ahmadilivani 2025": "001_"}

_HEADING = re.compile(r"^#*\s*(\d+(?:\.\d+)+)\.?\s+[A-Z]")


def section_text(key: str, section: str) -> str:
    """The body of ``section`` (e.g. ``"§6.4"``) of seed ``key``, heading to heading.

    A heading number that appears twice is the table of contents' first, the body's second, so
    the last occurrence is the body's.
    """
    lines = next(SEEDS_DIR.glob(f"{FILES[key]}*.txt")).read_text(errors="replace").splitlines()
    heads = [(n, m.group(1)) for n, line in enumerate(lines)
             if (m := _HEADING.match(line)) and "\t" not in line and len(line) < 120]
    number = section.lstrip("§")
    start = max(n for n, s in heads if s == number)
    end = min((n for n, _ in heads if n > start), default=len(lines))
    return "\n".join(lines[start:end])

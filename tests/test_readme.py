"""The README's Python API example runs as written and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _example(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no python block after <!-- {marker} -->"
    return match.group(1)


@pytest.mark.synth
def test_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("api-example"), "README.md:api-example", "exec"), {})
    assert (tmp_path / "out" / "accelerator.v").is_file()
    assert (tmp_path / "synth_out" / "area.json").is_file()
    assert "transistors" in capsys.readouterr().out


def test_network_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("network-example"), "README.md:network-example", "exec"), {})
    first = capsys.readouterr().out.splitlines()[0].split()
    accuracy, cycles = float(first[0]), int(first[1])
    assert 0.5 < accuracy <= 1.0 and cycles > 0

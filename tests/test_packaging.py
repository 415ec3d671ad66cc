"""The distribution installs one import root, ``ftaccel``, and reads its version from metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import ftaccel

ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_the_package_metadata():
    assert ftaccel.__version__ == version("ftaccel")
    from ftaccel.rtl_gen.emit import GENERATOR

    assert GENERATOR.endswith(ftaccel.__version__)


@pytest.mark.slow
def test_wheel_installs_one_top_level_package(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("ftaccel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"ftaccel", f"ftaccel-{ftaccel.__version__}.dist-info"}, tops
    # every room is inside the root, with its data files
    for room in ("rtl_gen", "golden", "tb", "synth", "app"):
        assert f"ftaccel/{room}/__init__.py" in names
    assert "ftaccel/synth/area.ys" in names
    assert "ftaccel/synth/sta.tcl" in names  # the OpenSTA script
    assert "ftaccel/app/models/digits-cnn.npz" in names  # built-in models and data
    assert "ftaccel/app/models/digits.npz" in names

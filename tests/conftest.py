"""Shared pytest fixtures: seeded random generators that print their seed."""

from __future__ import annotations

import os
import stat
import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from ``SEED`` (default 0) and the test's id.

    Prints the seed so any failure can be replayed with ``SEED=<n> pytest <test id>``.
    """
    base = int(os.environ.get("SEED", "0"))
    seed = (base * 1_000_003 + zlib.crc32(request.node.nodeid.encode())) & 0xFFFFFFFF
    print(f"random seed for {request.node.nodeid}: {seed} (SEED={base})")
    return np.random.default_rng(seed)


def _listing(folder):
    """Every path below ``folder`` with its type and content (to see any change at all)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        out[str(p.relative_to(folder))] = (kind, p.read_bytes() if stat.S_ISREG(st.st_mode)
                                           else os.readlink(p) if p.is_symlink() else None)
    return out


@pytest.fixture
def listing():
    """``listing(folder)``: a snapshot of everything below ``folder`` (types and contents)."""
    return _listing

"""Mapping of a matrix product onto the R×C array: which PE computes what, and tiling.

A layer is the product ``C = A @ B`` with ``A`` the M×K activations (M = batch, the seed's
``b``; K = input features, ``c_i``) and ``B`` the K×N weights (N = output neurons, ``c_o``).
The seed's Eqs. 10.3–10.5 (Ozen 2023 §10.3.2) give, for an N×N array, the (column, row) of the
PE a variable is pinned to; on an R×C array the column index is taken modulo C and the row
index modulo R:

* WS, Eq. 10.3: weight ``B[c_i, c_o]``  → PE (row ``c_i % R``, column ``c_o % C``);
* IS, Eq. 10.4: input  ``A[b, c_i]``    → PE (row ``c_i % R``, column ``b % C``);
* OS, Eq. 10.5: output ``C[b, c_o]``    → PE (row ``b % R``,   column ``c_o % C``).

Tiles are visited in the order of :mod:`golden.schedule` (the driver's order):

* WS: for each N-tile (C neurons), for each K-tile (R inputs): load that weight tile, stream
  all M rows of A; the K-tiles of one N-tile chain their partial sums through ``psum_in``.
* IS: for each M-tile (C batch rows), for each K-tile: load that input tile, stream all N
  weight columns; partial sums chain through ``psum_in`` likewise.
* OS: for each M-tile (R rows), for each N-tile (C neurons): stream the whole K reduction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "tiles", "pe_of_weight", "pe_of_input", "pe_of_output", "pe_map",
           "ceil_div"]


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` in integers."""
    return -(-a // b)


@dataclass(frozen=True)
class Tile:
    """One use of the array: index ranges into M, K and N (half-open)."""

    m0: int
    m1: int
    k0: int
    k1: int
    n0: int
    n1: int
    first_k: bool  # first K-tile of its output block (partial sums start from zero / bias)
    last_k: bool   # last K-tile: its outputs are final


def tiles(dataflow: str, rows: int, cols: int, M: int, K: int, N: int) -> tuple[Tile, ...]:
    """The tiles of an M×K @ K×N product in the order the driver runs them (memoised).

    A campaign asks for the same few products' tiles for every fault (hundreds of tiles on a
    real network's layer), so the tuple is built once per shape.
    """
    return _tiles(str(dataflow), int(rows), int(cols), int(M), int(K), int(N))


@functools.lru_cache(maxsize=1024)
def _tiles(dataflow: str, rows: int, cols: int, M: int, K: int, N: int) -> tuple[Tile, ...]:
    out: list[Tile] = []
    if dataflow == "os":
        for m0 in range(0, M, rows):
            for n0 in range(0, N, cols):
                out.append(Tile(m0, min(M, m0 + rows), 0, K, n0, min(N, n0 + cols), True, True))
        return tuple(out)
    k_starts = list(range(0, K, rows))
    if dataflow == "ws":
        for n0 in range(0, N, cols):
            for i, k0 in enumerate(k_starts):
                out.append(Tile(0, M, k0, min(K, k0 + rows), n0, min(N, n0 + cols),
                                i == 0, i == len(k_starts) - 1))
        return tuple(out)
    if dataflow == "is":
        for m0 in range(0, M, cols):
            for i, k0 in enumerate(k_starts):
                out.append(Tile(m0, min(M, m0 + cols), k0, min(K, k0 + rows), 0, N,
                                i == 0, i == len(k_starts) - 1))
        return tuple(out)
    raise ValueError(f"dataflow must be ws, is or os, not {dataflow!r}")


def pe_of_weight(c_o, c_i, rows: int, cols: int):
    """Eq. 10.3 (WS): (row, column) of the PE holding weight ``B[c_i, c_o]``."""
    return np.asarray(c_i) % rows, np.asarray(c_o) % cols


def pe_of_input(b, c_i, rows: int, cols: int):
    """Eq. 10.4 (IS): (row, column) of the PE holding input ``A[b, c_i]``."""
    return np.asarray(c_i) % rows, np.asarray(b) % cols


def pe_of_output(c_o, b, rows: int, cols: int):
    """Eq. 10.5 (OS): (row, column) of the PE accumulating output ``C[b, c_o]``."""
    return np.asarray(b) % rows, np.asarray(c_o) % cols


def pe_map(dataflow: str, rows: int, cols: int, M: int, K: int, N: int):
    """For every variable pinned in this dataflow, the flat PE index ``row * cols + col``.

    Returns an int array shaped like the pinned tensor: ``B`` (K×N) for WS, ``A`` (M×K) for
    IS, ``C`` (M×N) for OS.  Bypass masks and fault maps are defined through this.
    """
    if dataflow == "ws":
        ci, co = np.meshgrid(np.arange(K), np.arange(N), indexing="ij")
        r, c = pe_of_weight(co, ci, rows, cols)
    elif dataflow == "is":
        b, ci = np.meshgrid(np.arange(M), np.arange(K), indexing="ij")
        r, c = pe_of_input(b, ci, rows, cols)
    elif dataflow == "os":
        b, co = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
        r, c = pe_of_output(co, b, rows, cols)
    else:
        raise ValueError(f"dataflow must be ws, is or os, not {dataflow!r}")
    return r * cols + c

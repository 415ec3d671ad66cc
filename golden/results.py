"""What a run's recorded output ports say about the product, in the product's own terms.

The checkers of the Sanity-Check (Ozen 2023 ch. 6) count *vectors*: every vector that leaves the
array, the partial sums of K-tiles that are not the last included, and the spatial checker
numbers them in that order (``checksum_first``).  A user asks which rows (images) and
columns (output neurons) of ``C = A @ B`` were flagged.  :func:`alarm_report` maps the
per-cycle flags back through the driver program (:class:`golden.schedule.Program`):

* **spatial** (``checksum_error``, one flag per output vector, aligned with ``out_valid``):
  a flagged result vector names one row of ``C`` and the columns of its N-tile; the check
  cannot tell which column.
* **temporal** (``temporal_checked``/``temporal_error``/``temporal_lanes``, one check per
  batch of N vectors, in the cycle its sanity vector shows): a flagged batch names its rows
  and, per failing lane, one column of ``C`` (or the sanity column); it cannot tell which
  row of the batch.
* with both, an output flagged by both checks is *located*: row from the spatial check,
  column from the temporal one.

Checks of intermediate K-tile partial sums are counted apart (``partial_sum_*``): an error
there also reaches the final sums through the chained partial sums, so it is normally
flagged again in a result vector.  :func:`mismatch_report` lists where two results differ.
"""

from __future__ import annotations

import numpy as np

from .schedule import Program

__all__ = ["alarm_report", "alarm_lines", "mismatch_report"]


def _vectors(program: Program, cycles) -> list[dict]:
    """For each cycle, the rows and columns of ``C`` whose results show in it."""
    out = []
    for t in cycles:
        m, n = np.nonzero(program.out_cycle == t)
        out.append({"cycle": int(t), "rows": sorted(set(m.tolist())),
                    "columns": sorted(set(n.tolist()))})
    return out


def _spatial(program: Program, rec: dict, final: np.ndarray) -> dict:
    T = len(rec["out_valid"])
    err = rec["checksum__error"].astype(bool)
    is_final = np.zeros(T, dtype=bool)
    is_final[final] = True
    partial = rec["out_valid"].astype(bool) & ~is_final
    flagged = np.nonzero(err & is_final)[0]
    vectors = _vectors(program, flagged)
    return {
        "alarm": bool(rec["checksum__alarm"].max(initial=0)),
        "result_vectors": int(len(final)),
        "result_vectors_flagged": len(vectors),
        "rows_flagged": sorted({m for v in vectors for m in v["rows"]}),
        "flagged": vectors,
        "partial_sum_vectors": int(partial.sum()),
        "partial_sum_vectors_flagged": int((err & partial).sum()),
        "first_failing_vector": (int(rec["checksum__first"][-1])
                                 if rec["checksum__alarm"].max(initial=0) else None),
    }


def _temporal(cfg, program: Program, rec: dict) -> tuple[dict, np.ndarray]:
    checks = np.nonzero(rec["temporal__checked"].astype(bool))[0]
    final = np.sort(np.asarray(program.sanity_cycle, dtype=np.int64))
    is_final = np.isin(checks, final)
    err = rec["temporal__error"].astype(bool)
    # The batch of a result closes at the first sanity vector after it (passes never overlap).
    closing = final[np.minimum(np.searchsorted(final, program.out_cycle, side="right"),
                               len(final) - 1)] if len(final) else program.out_cycle * 0 - 1
    located = np.zeros(program.out_cycle.shape, dtype=bool)
    sanity_lane = cfg.cols if cfg.array_cols > cfg.cols else None
    batches = []
    for s in final:
        if not err[s]:
            continue
        lanes = int(rec["temporal__lane_errors"][s])
        in_batch = closing == s
        hit = in_batch & ((lanes >> program.out_lane) & 1).astype(bool)
        located |= hit
        m_all, _ = np.nonzero(in_batch)
        _, n_hit = np.nonzero(hit)
        batches.append({"cycle": int(s), "rows": sorted(set(m_all.tolist())),
                        "columns": sorted(set(n_hit.tolist())),
                        "sanity_column": bool(sanity_lane is not None
                                              and lanes >> sanity_lane & 1)})
    partial = checks[~is_final]
    report = {
        "alarm": bool(rec["temporal__alarm"].max(initial=0)),
        "batches": int(len(final)),
        "batches_flagged": len(batches),
        "columns_flagged": sorted({n for b in batches for n in b["columns"]}),
        "flagged": batches,
        "partial_sum_batches": int(len(partial)),
        "partial_sum_batches_flagged": int(err[partial].sum()),
        "overrun": bool(rec["temporal__overrun"].max(initial=0)),
    }
    return report, located


def alarm_report(cfg, program: Program, rec: dict[str, np.ndarray]) -> dict:
    """The checksum flags of one run mapped to the rows and columns of the product.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The configuration that ran (its ``checksum`` says which checkers exist).
    program : Program
        The driver program of the run (result positions, sanity-vector cycles).
    rec : dict
        The recorded output ports (RTL or golden, the same dictionary).

    Returns
    -------
    dict
        ``{"spatial": {...}, "temporal": {...}, "located": [[m, n], ...], "alarm": bool}``;
        a checksum that is not configured is absent (``located`` needs both).  See the
        module docstring for the fields.
    """
    report: dict = {}
    final = np.unique(program.out_cycle[program.out_cycle >= 0])
    if cfg.spatial:
        report["spatial"] = _spatial(program, rec, final)
    if cfg.temporal:
        report["temporal"], by_lane = _temporal(cfg, program, rec)
        if cfg.spatial:
            by_row = np.isin(program.out_cycle,
                             [v["cycle"] for v in report["spatial"]["flagged"]])
            report["located"] = np.argwhere(by_row & by_lane).tolist()
    report["alarm"] = any(report[k]["alarm"] for k in ("spatial", "temporal") if k in report)
    return report


def _short(values: list, limit: int = 8) -> str:
    text = ", ".join(map(str, values[:limit]))
    return f"[{text}{', …' if len(values) > limit else ''}]"


def alarm_lines(report: dict) -> list[str]:
    """One line per configured checksum, for a terminal."""
    lines = []
    sp = report.get("spatial")
    if sp is not None:
        if sp["alarm"]:
            lines.append(
                f"spatial checksum ALARM: {sp['result_vectors_flagged']} of "
                f"{sp['result_vectors']} result vectors flagged, rows {_short(sp['rows_flagged'])}"
                f"; {sp['partial_sum_vectors_flagged']} of {sp['partial_sum_vectors']} "
                "partial-sum vectors")
        else:
            lines.append(f"spatial checksum: {sp['result_vectors']} result vectors and "
                         f"{sp['partial_sum_vectors']} partial-sum vectors checked, no error")
    tp = report.get("temporal")
    if tp is not None:
        if tp["alarm"]:
            lines.append(
                f"temporal checksum ALARM: {tp['batches_flagged']} of {tp['batches']} batches "
                f"flagged, columns {_short(tp['columns_flagged'])}; "
                f"{tp['partial_sum_batches_flagged']} of {tp['partial_sum_batches']} "
                "partial-sum batches")
        else:
            lines.append(f"temporal checksum: {tp['batches']} batches and "
                         f"{tp['partial_sum_batches']} partial-sum batches checked, no error")
        if tp["overrun"]:
            lines.append("temporal checksum: OVERRUN (an input arrived while a sanity vector "
                         "was due)")
    if report.get("located"):
        lines.append(f"located by both checks (row, column): "
                     f"{_short([tuple(p) for p in report['located']])}")
    return lines


def mismatch_report(got: np.ndarray, want: np.ndarray, limit: int = 20) -> dict:
    """Where ``got`` differs from ``want`` (same shape).

    Returns the count and the first ``limit`` positions as ``[row, column, got, want]``.
    """
    bad = np.argwhere(got != want)
    return {"count": int(len(bad)),
            "first": [[int(m), int(n), int(got[m, n]), int(want[m, n])]
                      for m, n in bad[:limit]]}

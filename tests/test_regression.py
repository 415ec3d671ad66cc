"""tb.regression: the random cases of ``rtlgen verify`` always fit the configuration."""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.tb.product import prepare
from ftaccel.tb.regression import plain_options, random_case, regression


@pytest.mark.parametrize("cfg", [
    AcceleratorConfig(rows=2, cols=3),
    AcceleratorConfig(rows=3, cols=2, dataflow="is", acc_width=16),   # K capped at 1
    AcceleratorConfig(rows=2, cols=2, dataflow="os", a_width=16, w_width=16, acc_width=33),
    AcceleratorConfig(rows=4, cols=4, lcu=True, lcu_depth=3),          # M·⌈N/C⌉ ≤ 3
    AcceleratorConfig(rows=3, cols=3, afd=True, median=3, checksum="both"),
])
def test_every_random_case_passes_every_check(cfg, rng):
    shapes = set()
    for i in range(40):
        A, B, relu, shift = random_case(cfg, rng, i)
        prepare(cfg, A, B, plain_options(cfg, relu=relu, shift=shift))  # raises if not
        if cfg.lcu:
            assert cfg.result_vectors(A.shape[0], B.shape[1]) <= cfg.lcu_depth
        if i % 3 == 1:  # the edge-value cases use only extremes, zeros and ±1
            lo, hi = -(1 << (cfg.a_width - 1)), (1 << (cfg.a_width - 1)) - 1
            assert set(np.unique(A)) <= {lo, hi, 0, -1}
        shapes.add(A.shape[1] > cfg.rows)
    assert cfg.acc_width == 16 or shapes == {False, True}  # K-tiling occurs when K may grow


def test_regression_refuses_bad_seed_and_count():
    with pytest.raises(ConfigError, match="seed"):
        regression(AcceleratorConfig(), seed=-1, count=1)
    with pytest.raises(ConfigError, match="count"):
        regression(AcceleratorConfig(), seed=1, count=0)

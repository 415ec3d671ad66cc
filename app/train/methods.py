"""The seeds' training methods as parts of the training forward pass and loss (issue 28).

* :func:`outlier_penalty` — Ozen 2023 §9.3.2, Eqs. 9.3–9.4: ``α Σ_l (max|W_l| + max|B_l|)``
  (max-magnitude) or ``α Σ_l (max W_l² + max B_l²)`` (max-squared), on the weights and
  biases the product nodes multiply (BatchNorm folded in).  Only the largest entry of each
  group receives a gradient, so the range shrinks without touching the rest.
* :class:`CampaignFaults` — fault-aware fine-tuning: a product node's output is what the
  campaign's own fault model gives (:class:`golden.fault_models.FastFaultEngine`, exact: bit
  errors at a rate in the stored weights and/or the streamed activations, Ozen 2023 Algorithm
  6.1; or the HAS report's per-PE profiles, every PE's rate ~ U(0, FR_max)), computed on the host
  for the step's integers through :func:`jax.pure_callback`; the gradient is the fault-free path's
  (straight through), the usual way to train under injected noise.  Draws are fresh every step,
  seeded by ``(seed, step, node)``; a step's PE profile is shared by all nodes (one device).

The median filter, the bypass masks and the complementary-sparsity mask act inside the
product nodes (:class:`app.train.net.Hooks`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["outlier_penalty", "CampaignFaults", "PENALTIES"]

#: Ozen 2023 Eqs. 9.3 and 9.4.
PENALTIES = ("max-magnitude", "max-squared")


def outlier_penalty(weights: dict, alpha: float, kind: str = "max-magnitude"):
    """Ozen 2023 Eq. 9.3 (``max-magnitude``) or 9.4 (``max-squared``) over ``weights``.

    ``weights`` maps a node to its ``(W, b)`` as multiplied (``aux["weights"]`` of
    :meth:`app.train.net.Graph.apply`); weights and biases are separate groups (Ozen 2023 §9.3.2).
    """
    total = 0.0
    for W, b in weights.values():
        if kind == "max-magnitude":
            total = total + jnp.max(jnp.abs(W)) + jnp.max(jnp.abs(b))
        else:
            total = total + jnp.max(W * W) + jnp.max(b * b)
    return alpha * total


class CampaignFaults:
    """A product node's output under the campaign's fault model (module docstring).

    Parameters
    ----------
    cfg : AcceleratorConfig
        The accelerator the campaign models (dataflow, array size, accumulator width).
    kind : str
        ``bit_errors`` or ``pe_profile`` (the campaign's ``faults.model``).
    rate : float
        Bit-error rate, or FR_max of the per-PE profile.
    targets : tuple
        ``weights`` and/or ``activations`` (bit errors).
    profile_mode : str
        ``bitflip``, ``flip-to-0`` or ``flip-to-1`` (profiles).
    seed : int
        Seeds every draw with the step and the node.
    units, node_units : dict
        The layers' unit options (e.g. ``median_enable``), as the campaign runs them:
        common ones, and per node (overriding).
    """

    def __init__(self, cfg, kind: str, rate: float, *, targets=("weights",),
                 profile_mode: str = "bitflip", seed: int = 0, units: dict | None = None,
                 node_units: dict | None = None, bits=None):
        self.cfg, self.kind, self.rate = cfg, kind, float(rate)
        self.targets, self.profile_mode, self.seed = tuple(targets), profile_mode, int(seed)
        self.units = dict(units or {})
        self.node_units = dict(node_units or {})
        self.bits = bits

    def host(self, i: int, A, W, b, shift, relu: bool, step) -> np.ndarray:
        """The integer outputs of node ``i``'s product under one draw of the faults."""
        from ftaccel.golden.fault_models import (
            FastFaultEngine,
            bit_errors,
            pe_profile,
            profile_errors,
        )
        from ftaccel.golden.network import Product
        from ftaccel.golden.output_stage import Requant

        cfg = self.cfg
        A = np.rint(np.asarray(A, np.float64)).astype(np.int64)
        W = np.rint(np.asarray(W, np.float64)).astype(np.int64)
        b = np.rint(np.asarray(b, np.float64)).astype(np.int64)
        step = int(np.asarray(step))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step, i]))
        units = {**self.units, **self.node_units.get(i, {})}
        if self.kind == "bit_errors":
            if "weights" in self.targets:
                units["stored_weights"] = bit_errors(W, self.rate, cfg.w_width, rng)
            if "activations" in self.targets:
                units["act_errors"] = (self.rate, int(rng.integers(1 << 62)))
        else:
            device = np.random.default_rng(np.random.SeedSequence([self.seed, step]))
            prof = pe_profile(cfg.rows, cfg.cols, self.rate, device)
            units["errors"] = profile_errors(cfg, prof, A.shape[0], A.shape[1], W.shape[1],
                                             self.profile_mode, rng, bits=self.bits)
        res = FastFaultEngine(cfg, checked=False).product(
            Product(index=i, name=f"node{i}", A=A, B=W, bias=b,
                    requant=Requant(shift=int(np.asarray(shift)), relu=bool(relu)),
                    units=units))
        return np.asarray(res.q, np.float64)

    def callback(self, i: int, A, W, b, shift, relu: bool, step, dtype):
        """The faulty integer outputs as a traced array (``jax.pure_callback``, no gradient)."""
        sg = jax.lax.stop_gradient
        shape = jax.ShapeDtypeStruct((A.shape[0], W.shape[1]), dtype)

        def host(A_, W_, b_, s_, t_):
            return self.host(i, A_, W_, b_, s_, relu, t_).astype(dtype)

        return jax.pure_callback(host, shape, sg(A), sg(W), sg(b), sg(shift),
                                 jnp.asarray(step))

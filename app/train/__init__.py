"""Training the hardware expects: quantisation-aware training in JAX (issue 28).

The one training path of the tool, for any graph the network runner takes.  The forward
pass is the accelerator's int8 arithmetic with straight-through gradients
(:mod:`app.train.net`), so that the exported model gives, on the golden, cycle and RTL
engines, bit for bit the logits of the training forward; the seeds' methods are options of
one function, :func:`train` (``rtlgen train``):

==============  ==================================================================  ===========
``--method``    what it trains in                                                   source
==============  ==================================================================  ===========
``qat``         the int8 arithmetic alone (fine-tuning, or a baseline)               README, Fault
campaigns
``afd``         anomaly suppression (Eqs. 8.1/8.2): step forward, sigmoid backward   Ozen 2023
§8.5.1
``median``      Median-3/5 on each streamed R-lane chunk, forward and backward       Ozen 2023
§8.5.2
``dropconnect`` WS: the weights a bypassed PE holds dropped, one R×C map per step    Ozen 2023
§10.3.2
``dropout-in``  IS: the layer inputs a bypassed PE holds dropped                     Ozen 2023
§10.3.2
``dropout-out`` OS: the layer outputs a bypassed PE holds dropped                    Ozen 2023
§10.3.2
``outlier``     the max-magnitude / max-squared penalty on every layer's range       Ozen 2023
§9.3.2
``fault-aware`` the campaign's fault model (bit errors at a rate, per-PE profiles)   Ozen 2023 Alg.
6.1, Shresthamali HAS
``sparse``      complementary sparsity of the flow MACs, the mask evolving           Ozen 2023
§12.4.1
``calibrate``   no training: a device's statistics re-estimated under its bypass     Ozen 2023
§10.3.3 ==============  ==================================================================
===========

JAX and optax are an optional dependency (``pip install 'ftaccel[train]'``); everything in this
package that needs them imports them through :func:`jax_modules`, which raises
:class:`JaxMissing` (the command line's exit 3) when they are not installed.
"""

from __future__ import annotations

__all__ = ["METHODS", "JaxMissing", "jax_modules", "TrainOptions", "train", "run_train",
           "calibrate_bypass", "dequantize", "evaluate", "TrainResult"]

#: ``--method`` values and what each trains (module docstring).
METHODS = ("qat", "afd", "median", "dropconnect", "dropout-in", "dropout-out", "outlier",
           "fault-aware", "sparse", "calibrate")


class JaxMissing(ImportError):
    """JAX or optax is not installed (the training path's optional dependency)."""


def jax_modules():
    """``(jax, optax)`` with 64-bit floats enabled, or :class:`JaxMissing` with how to install."""
    try:
        import jax  # optional heavy dependency: only the training path needs it
        import optax
    except ImportError:
        raise JaxMissing("training needs JAX and optax: pip install 'ftaccel[train]' "
                         "(or pip install jax jaxlib optax)") from None
    # exact integer emulation in float64 (app.train.net); training itself picks its dtype
    jax.config.update("jax_enable_x64", True)
    return jax, optax


def __getattr__(name: str):
    # The API lives in app.train.trainer, which imports JAX: load it on first use only.
    if name == "TrainOptions":  # validation only: no JAX needed
        from ftaccel.app.train.options import TrainOptions

        return TrainOptions
    if name in ("train", "run_train", "calibrate_bypass", "dequantize", "evaluate",
                "TrainResult"):
        jax_modules()
        from ftaccel.app.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

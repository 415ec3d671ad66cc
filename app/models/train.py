"""Train the built-in float models on scikit-learn's bundled digits; write them beside this file.

Run from a development install (needs scikit-learn, which the package itself does not)::

    python app/models/train.py

It writes, deterministically (fixed seeds, single-threaded numpy arithmetic):

* ``digits.npz`` — the 1,797 8×8 images (uint8, 0 … 16) and labels of
  ``sklearn.datasets.load_digits`` (UCI optical digits, CC BY 4.0), with the fixed split
  ``train_test_split(test_size=0.3, random_state=0, stratify=labels)``: 1,257 / 540;
* ``digits-mlp.npz`` — 64-64-32-10 ReLU MLP, ``sklearn.neural_network.MLPClassifier``
  (Adam, seed 0), the seeds' MLP stand-in (README, Fault campaigns);
* ``digits-cnn.npz`` — a small LeNet-style CNN (conv 3×3 8 ch + ReLU, max-pool 2,
  conv 3×3 16 ch + ReLU, max-pool 2, dense 64-32 ReLU, dense 32-10), trained here in plain
  numpy (mini-batch Adam on cross-entropy, seed 0) with the same im2col lowering the
  accelerator uses (:func:`golden.network.im2col`).

Both models are stored as float :class:`golden.network.Model` files; the tool quantises them on
load with calibration on the training split.  Takes about 20 s on one core.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ftaccel.golden.network import Conv2D, Dense, Flatten, MaxPool, Model, im2col

HERE = Path(__file__).resolve().parent


def _write(path: Path, data: bytes) -> None:
    from ftaccel.files import atomic_write

    with atomic_write(path) as fh:
        fh.write(data)


def dump_digits() -> dict:
    """Write ``digits.npz`` (images, labels, train/test split) and return the scaled split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = d.images.astype(np.uint8)
    labels = d.target.astype(np.uint8)
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=0.3, random_state=0, stratify=labels)
    train, test = np.sort(train), np.sort(test)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels, train=train, test=test)
    _write(HERE / "digits.npz", buf.getvalue())
    x = images.astype(np.float64) / 16.0
    return {"x_train": x[train], "y_train": labels[train].astype(np.int64),
            "x_test": x[test], "y_test": labels[test].astype(np.int64)}


def train_mlp(data: dict) -> Model:
    """The float digits MLP (64-32-10, scikit-learn), with its test accuracy in ``info``."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(64, 32), activation="relu", solver="adam",
                        alpha=1e-4, max_iter=400, random_state=0, tol=1e-5,
                        n_iter_no_change=20)
    xtr = data["x_train"].reshape(len(data["x_train"]), -1)
    clf.fit(xtr, data["y_train"])
    layers = []
    names = ("fc1", "fc2", "fc3")
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        layers.append(Dense(weights=W, bias=b, relu=i < 2, name=names[i]))
    acc = float(clf.score(data["x_test"].reshape(len(data["x_test"]), -1), data["y_test"]))
    return Model(layers=tuple(layers), input_shape=(64,), classes=10, name="digits-mlp",
                 input_layout="flat",
                 info={"trained_with": f"scikit-learn MLPClassifier (hidden 64, 32; seed 0; "
                                       f"{clf.n_iter_} epochs)",
                       "float_test_accuracy": acc, "data": "digits /16, fixed split"})


# -- a small numpy CNN trainer ---------------------------------------------------------------

def _col2im(cols: np.ndarray, shape: tuple, size: int, pad: int) -> np.ndarray:
    """Adjoint of im2col (stride 1, square kernel, symmetric padding)."""
    b, h, w, c = shape
    ho, wo = h + 2 * pad - size + 1, w + 2 * pad - size + 1
    cols = cols.reshape(b, ho, wo, size, size, c)
    out = np.zeros((b, h + 2 * pad, w + 2 * pad, c))
    for dy in range(size):
        for dx in range(size):
            out[:, dy:dy + ho, dx:dx + wo, :] += cols[:, :, :, dy, dx, :]
    return out[:, pad:pad + h, pad:pad + w, :]


def _pool_fwd(x):
    b, h, w, c = x.shape
    v = x.reshape(b, h // 2, 2, w // 2, 2, c)
    y = v.max(axis=(2, 4))
    mask = v == y[:, :, None, :, None, :]
    # One winner per window (the first), so the gradient is not duplicated on ties.
    first = np.cumsum(mask.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
                      .reshape(b, h // 2, w // 2, c, 4), axis=-1) == 1
    m2 = (mask.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 2, w // 2, c, 4) & first)
    return y, m2


def _pool_bwd(dy, m2, shape):
    b, h, w, c = shape
    g = m2 * dy[..., None]
    return g.reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(shape)


def train_cnn(data: dict, epochs: int = 40, seed: int = 0) -> Model:
    """The float digits CNN, trained in numpy from ``seed``; its test accuracy in ``info``."""
    rng = np.random.default_rng(seed)
    shapes = {"c1": (3, 3, 1, 8), "c2": (3, 3, 8, 16), "f1": (64, 32), "f2": (32, 10)}
    params = {}
    for k, s in shapes.items():
        fan_in = int(np.prod(s[:-1]))
        params[k + "w"] = rng.normal(0, np.sqrt(2.0 / fan_in), s)
        params[k + "b"] = np.zeros(s[-1])
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    xtr = data["x_train"][..., None]
    ytr = data["y_train"]
    lr, b1, b2, eps, wd = 2e-3, 0.9, 0.999, 1e-8, 1e-4
    step = 0
    for _epoch in range(epochs):
        order = rng.permutation(len(xtr))
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            x, y = xtr[idx], ytr[idx]
            n = len(idx)
            # forward
            a1 = im2col(x, (3, 3), (1, 1), (1, 1, 1, 1))
            z1 = a1 @ params["c1w"].reshape(9, 8) + params["c1b"]
            h1 = np.maximum(z1, 0).reshape(n, 8, 8, 8)
            p1, m1 = _pool_fwd(h1)
            a2 = im2col(p1, (3, 3), (1, 1), (1, 1, 1, 1))
            z2 = a2 @ params["c2w"].reshape(72, 16) + params["c2b"]
            h2 = np.maximum(z2, 0).reshape(n, 4, 4, 16)
            p2, m2 = _pool_fwd(h2)
            f = p2.reshape(n, 64)
            z3 = f @ params["f1w"] + params["f1b"]
            h3 = np.maximum(z3, 0)
            z4 = h3 @ params["f2w"] + params["f2b"]
            e = np.exp(z4 - z4.max(axis=1, keepdims=True))
            prob = e / e.sum(axis=1, keepdims=True)
            # backward
            d4 = prob
            d4[np.arange(n), y] -= 1
            d4 /= n
            g = {"f2w": h3.T @ d4, "f2b": d4.sum(0)}
            d3 = (d4 @ params["f2w"].T) * (z3 > 0)
            g["f1w"], g["f1b"] = f.T @ d3, d3.sum(0)
            dp2 = (d3 @ params["f1w"].T).reshape(p2.shape)
            dh2 = _pool_bwd(dp2, m2, h2.shape).reshape(-1, 16) * (z2 > 0)
            g["c2w"], g["c2b"] = (a2.T @ dh2).reshape(shapes["c2"]), dh2.sum(0)
            dp1 = _col2im(dh2 @ params["c2w"].reshape(72, 16).T, p1.shape, 3, 1)
            dh1 = _pool_bwd(dp1, m1, h1.shape).reshape(-1, 8) * (z1 > 0)
            g["c1w"], g["c1b"] = (a1.T @ dh1).reshape(shapes["c1"]), dh1.sum(0)
            step += 1
            for k in params:
                gk = g[k] + (wd * params[k] if k.endswith("w") else 0)
                m[k] = b1 * m[k] + (1 - b1) * gk
                v[k] = b2 * v[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1 ** step)
                vh = v[k] / (1 - b2 ** step)
                params[k] -= lr * mh / (np.sqrt(vh) + eps)
    layers = (
        Conv2D(weights=params["c1w"], bias=params["c1b"], padding=(1, 1, 1, 1), relu=True,
               name="conv1"),
        MaxPool(size=(2, 2), stride=(2, 2), name="pool1"),
        Conv2D(weights=params["c2w"], bias=params["c2b"], padding=(1, 1, 1, 1), relu=True,
               name="conv2"),
        MaxPool(size=(2, 2), stride=(2, 2), name="pool2"),
        Flatten(name="flatten"),
        Dense(weights=params["f1w"], bias=params["f1b"], relu=True, name="fc1"),
        Dense(weights=params["f2w"], bias=params["f2b"], name="fc2"),
    )
    model = Model(layers=layers, input_shape=(8, 8, 1), classes=10, name="digits-cnn",
                  input_layout="hwc")
    acc = float(np.mean(model.forward_float(data["x_test"]).argmax(1) == data["y_test"]))
    info = {"trained_with": f"numpy (app/models/train.py), Adam lr {lr}, batch 32, "
                            f"{epochs} epochs, seed {seed}",
            "float_test_accuracy": acc, "data": "digits /16, fixed split"}
    return Model(layers=layers, input_shape=(8, 8, 1), classes=10, name="digits-cnn",
                 input_layout="hwc", info=info)


def main() -> int:
    """Train both built-in models and write them next to this file; exit status 0."""
    t0 = time.perf_counter()
    data = dump_digits()
    for model in (train_mlp(data), train_cnn(data)):
        _write(HERE / f"{model.name}.npz", model.to_bytes())
        print(f"{model.name}: float test accuracy {model.info['float_test_accuracy']:.4f}")
    print(f"trained in {time.perf_counter() - t0:.1f} s; wrote {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

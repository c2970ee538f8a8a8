"""Pictures of a training run: learning curves, and what each first-layer neuron looks for.

matplotlib is an optional extra (``pip install "bpfast[plot]"``); `require_matplotlib` says how
to get it when it is missing. Figures are written straight to PNG files (no screen needed).
"""
import math

import numpy as np

INSTALL_HINT = 'plots need matplotlib: pip install "bpfast[plot]"'


def require_matplotlib():
    """matplotlib.pyplot on the file-only Agg backend; ImportError with INSTALL_HINT if absent."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(curves, path, title=""):
    """Cost and accuracy per epoch, training beside test: ``curves`` maps "train cost",
    "test cost", "train accuracy", "test accuracy" to one value per epoch."""
    plt = require_matplotlib()
    epochs = np.arange(1, len(curves["train cost"]) + 1)
    figure, (cost, accuracy) = plt.subplots(1, 2, figsize=(9, 3.6))
    for part, style in (("train", "-"), ("test", "--")):
        cost.plot(epochs, curves[f"{part} cost"], style, label=part)
        accuracy.plot(epochs, 100 * np.asarray(curves[f"{part} accuracy"]), style, label=part)
    cost.set(xlabel="epoch", ylabel="C, the mean cost", yscale="log", title="cost")
    accuracy.set(xlabel="epoch", ylabel="%", title="accuracy")
    for axes in (cost, accuracy):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def image_shape(n_inputs):
    """The picture an input of n_inputs values is: a square if it can be, else one row."""
    side = math.isqrt(n_inputs)
    return (side, side) if side * side == n_inputs else (1, n_inputs)


def first_layer_weights(w, path, title=""):
    """Each row w_j of w^(1) drawn in the input's shape: red where a bright pixel raises z_j,
    blue where it lowers it — what hidden neuron j looks for."""
    plt = require_matplotlib()
    n_neurons = w.shape[0]
    columns = min(n_neurons, 10)
    rows = -(-n_neurons // columns)
    shape = image_shape(w.shape[1])
    figure, axes = plt.subplots(rows, columns, figsize=(1.1 * columns, 1.2 * rows + 0.4),
                                squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n_neurons:
            limit = np.abs(w[j]).max() or 1.0
            ax.imshow(w[j].reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit,
                      interpolation="nearest", aspect="auto" if shape[0] == 1 else "equal")
            ax.set_title(f"j = {j}", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)

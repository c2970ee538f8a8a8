"""Extract the 8×8 handwritten digits from scikit-learn's copy into bpfast's package data.

Run once, by a developer, with scikit-learn installed:

    python scripts/extract_digits.py

It writes src/bpfast/data/digits.npz (uint8 pixels 0..16 and labels 0..9, compressed); bpfast
itself never needs scikit-learn or a network connection to load them.
"""
import pathlib

import numpy as np
from sklearn.datasets import load_digits

target = pathlib.Path(__file__).resolve().parent.parent / "src" / "bpfast" / "data" / "digits.npz"
digits = load_digits()
assert digits.data.shape == (1797, 64) and digits.data.max() == 16
np.savez_compressed(target, X=digits.data.astype(np.uint8), labels=digits.target.astype(np.uint8))
print(f"wrote {target} ({target.stat().st_size} bytes)")

"""Generate fastadv/data/digits.npz, the small real image set bundled with fastadv.

The images are the 8x8 handwritten digits of the UCI "Optical Recognition of Handwritten
Digits" data set (Alpaydin & Kaynak, 1998; 1,797 images, 10 classes), taken from the copy
that scikit-learn ships inside its package (no download). Run once, from the repository
root, with scikit-learn installed; the library itself never imports scikit-learn:

    python scripts/make_digits.py

The file holds uint8 images [N, 1, 8, 8] (pixel counts 0..16 rescaled to 0..255), int64
labels, a fixed stratified train/test split (1,437 / 360, seed 0), and the per-channel
mean/std of the training images in [0, 1] units.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TEST_SIZE = 360
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "fastadv" / "data" / "digits.npz"


def stratified_test_indices(labels: np.ndarray, test_size: int, seed: int) -> np.ndarray:
    """Pick `test_size` indices so every class keeps its share of the whole set."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_size / len(labels)
    per_class = np.floor(exact).astype(int)
    # hand the rounding remainder to the classes with the largest fractional parts, so the
    # total is exactly test_size and no class is off by more than one
    remainder = test_size - per_class.sum()
    per_class[np.argsort(-(exact - per_class), kind="stable")[:remainder]] += 1
    chosen = []
    for cls, take in zip(classes, per_class):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(chosen))


def build(out: Path) -> None:
    from sklearn.datasets import load_digits  # only this script needs scikit-learn

    bunch = load_digits()
    raw = np.asarray(bunch.images)  # float64 counts 0..16, shape [1797, 8, 8]
    labels = np.asarray(bunch.target, dtype=np.int64)
    if raw.shape != (1797, 8, 8) or raw.min() < 0 or raw.max() > 16:
        raise RuntimeError(f"unexpected digits array: shape {raw.shape}, range {raw.min()}..{raw.max()}")
    images = np.rint(raw * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]

    test_idx = stratified_test_indices(labels, TEST_SIZE, SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True

    x_train, y_train = images[~is_test], labels[~is_test]
    x_test, y_test = images[is_test], labels[is_test]
    train01 = x_train.astype(np.float64) / 255.0
    mean = train01.mean(axis=(0, 2, 3))
    std = train01.std(axis=(0, 2, 3))

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        mean=mean.astype(np.float64), std=std.astype(np.float64),
    )
    print(f"wrote {out}: train {len(y_train)}, test {len(y_test)}, mean {mean}, std {std}, "
          f"{out.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()

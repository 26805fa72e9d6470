"""Reproduces the README's table: every method on the bundled digits at eps = 0.2 with the
settings of the end-to-end test (tests/test_train.py), clean and PGD-20 test accuracy and
training time. Run: python benchmarks/digits_methods.py"""
import sys
import time
from pathlib import Path

import torch

import fastadv
from fastadv._train_eval import clean_and_pgd_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_train import E2E_EPOCHS, E2E_EPS, E2E_METHODS  # noqa: E402  (one source of settings)


def main():
    torch.set_num_threads(1)
    train = fastadv.data.load("digits")
    test = fastadv.data.load("digits", split="test")
    x_test, y_test = test.x.float() / 255, test.y
    print(f"torch {torch.__version__}, fastadv backends {fastadv.ops.available_backends('cpu')}")
    print("| method | options | clean | PGD-20 | train time |\n|---|---|---|---|---|")
    for name, options in E2E_METHODS.items():
        torch.manual_seed(0)
        model = fastadv.models.get("small_cnn", in_channels=1, mean=train.mean, std=train.std,
                                   width=16, batch_norm=True)
        start = time.perf_counter()
        fastadv.train(model, name, train, epochs=E2E_EPOCHS, batch_size=64, lr=0.1,
                      progress=False, val_size=0, method_options={"eps": E2E_EPS, **options})
        seconds = time.perf_counter() - start
        clean, robust = clean_and_pgd_accuracy(model, x_test, y_test, eps=E2E_EPS, steps=20)
        print(f"| {name} | {options or ''} | {clean:.1%} | {robust:.1%} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()

"""Reproduces the README's digits table: every method on the bundled digits at eps = 0.2 with
the digits preset (fastadv.training.presets, also used by the CLI and the end-to-end test),
clean and PGD-20 test accuracy and training time. Run: python benchmarks/digits_methods.py"""
import time

import torch

import fastadv
from fastadv.training import clean_and_pgd_accuracy, presets

METHODS = ("standard", "fast_at", "pgd2_at", "trades", "fast_trades", "backward_smoothing",
           "fast_bat", "grad_align", "n_fgsm")


def main():
    torch.set_num_threads(1)
    train = fastadv.data.load("digits")
    test = fastadv.data.load("digits", split="test")
    x_test, y_test = test.x.float() / 255, test.y
    print(f"torch {torch.__version__}, fastadv backends {fastadv.ops.available_backends('cpu')}")
    print("| method | options | clean | PGD-20 | train time |\n|---|---|---|---|---|")
    for name in METHODS:
        torch.manual_seed(0)
        model = presets.digits_model(train)
        settings = presets.digits_training(name)
        start = time.perf_counter()
        fastadv.train(model, name, train, progress=False, val_size=0, **settings)
        seconds = time.perf_counter() - start
        clean, robust = clean_and_pgd_accuracy(model, x_test, y_test, eps=presets.DIGITS_EPS,
                                               steps=20)
        print(f"| {name} | {settings['method_options']} | {clean:.1%} | {robust:.1%} | "
              f"{seconds:.1f} s |")


if __name__ == "__main__":
    main()

"""N-FGSM next to Fast AT on the bundled digits over a range of radii: does Fast AT's
robustness collapse (catastrophic overfitting) at a radius where N-FGSM's does not?

Every run uses the digits preset (fastadv.training.presets: small CNN with batch norm, 15
epochs, batch 64, cyclic LR peaking at 0.1, no validation split) with eps overridden; the
final model (not a best checkpoint) is evaluated on the digits test split with clean accuracy
and PGD-20 (step eps/4) at the training radius. Variants:

- fast_at           Fast AT without its overfitting guard (guard=False), so a collapse
                    shows in the final model;
- fast_at+guard     Fast AT with the guard (its default): PGD-5 on one training batch per
                    epoch, restore the previous epoch and stop on a drop of 20 points;
- n_fgsm            the digits preset, clip 1.5 (in units of eps, so 1.5 * eps at every
                    radius), noise 2, step eps;
- n_fgsm_paper      the paper's defaults: noise 2, step eps, no clip.

Run: python benchmarks/digits_radius.py [--radii 0.2,0.3,0.4,0.5] [--seeds 0,1,2]
[--variants fast_at,fast_at+guard,n_fgsm,n_fgsm_paper]. One torch thread; prints per-seed
rows as it goes, then a Markdown table: means over the seeds and the PGD-20 of each seed.
"""
import argparse
import statistics
import time

import torch

import fastadv
from fastadv.training import clean_and_pgd_accuracy, presets

# name -> (method, extra method options, guard)
VARIANTS = {
    "fast_at": ("fast_at", {}, False),
    "fast_at+guard": ("fast_at", {}, True),
    "n_fgsm": ("n_fgsm", {}, False),
    "n_fgsm_paper": ("n_fgsm", {"clip": None, "noise": 2.0}, False),
}


def run_one(variant: str, eps: float, seed: int, train, x_test, y_test) -> dict:
    method, extra, guard = VARIANTS[variant]
    settings = presets.digits_training(method)
    options = {**settings.pop("method_options"), **extra, "eps": eps}
    torch.manual_seed(seed)
    model = presets.digits_model(train)
    start = time.perf_counter()
    result = fastadv.train(model, method, train, progress=False, val_size=0, seed=seed,
                           guard=guard, method_options=options, **settings)
    seconds = time.perf_counter() - start
    clean, robust = clean_and_pgd_accuracy(model, x_test, y_test, eps=eps, steps=20)
    return dict(variant=variant, eps=eps, seed=seed, clean=clean, robust=robust,
                seconds=seconds, epochs=len(result.history), stopped=result.stopped_early,
                options={k: v for k, v in options.items() if k != "eps"})


def parse_list(text: str, kind=float):
    return [kind(part) for part in text.split(",") if part.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", default="0.2,0.3,0.4,0.5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    radii, seeds = parse_list(args.radii), parse_list(args.seeds, int)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")

    torch.set_num_threads(1)
    train = fastadv.data.load("digits")
    test = fastadv.data.load("digits", split="test")
    x_test, y_test = test.x.float() / 255, test.y
    print(f"torch {torch.__version__}, fastadv backends {fastadv.ops.available_backends('cpu')}, "
          f"radii {radii}, seeds {seeds}", flush=True)
    rows = []
    for eps in radii:
        for variant in variants:
            for seed in seeds:
                row = run_one(variant, eps, seed, train, x_test, y_test)
                rows.append(row)
                stop = f", guard stopped after epoch {row['epochs']}" if row["stopped"] else ""
                print(f"eps {eps} {variant} seed {seed}: clean {row['clean']:.1%} PGD-20 "
                      f"{row['robust']:.1%} ({row['seconds']:.1f} s{stop})", flush=True)

    print(f"\n| eps | method | options | clean | PGD-20 (mean) | PGD-20 per seed {seeds} | "
          "guard stops | train time |\n|---|---|---|---|---|---|---|---|")
    for eps in radii:
        for variant in variants:
            group = [r for r in rows if r["eps"] == eps and r["variant"] == variant]
            options = ", ".join(f"{k} {v}" for k, v in group[0]["options"].items()) or ""
            stops = sum(r["stopped"] for r in group)
            per_seed = " / ".join(f"{r['robust']:.1%}" for r in group)
            print(f"| {eps} | {variant} | {options} | "
                  f"{statistics.mean(r['clean'] for r in group):.1%} | "
                  f"{statistics.mean(r['robust'] for r in group):.1%} | {per_seed} | "
                  f"{stops if variant.endswith('guard') else ''} | "
                  f"{statistics.mean(r['seconds'] for r in group):.1f} s |")


if __name__ == "__main__":
    main()

"""``fastadv train``: train a model with any method from the shell, then report the best
checkpoint's clean and PGD-20 robust accuracy on the data set's TEST split.

With no arguments it runs the embedded default: Backward Smoothing (Chen et al., AAAI 2022)
on the bundled 8x8 digits with a small CNN at eps = 0.2, in well under 2 minutes on 2 CPU
cores. Hyperparameters: --eps/--alpha/--beta/... or repeated --set key=value; numbers may be
written as fractions ("8/255").

The digits are not CIFAR: 8x8 images with 17 grey levels need a larger eps (0.2) and, where a
CIFAR default is tied to the CIFAR radius or input size, a digits value
(fastadv.training.presets). Any value given on the command line wins over a preset.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

from fastadv.cli.numbers import parse_number
from fastadv.training import presets

DEFAULT_METHOD = "backward_smoothing"
DATASET_DEFAULTS = presets.DATASET_DEFAULTS
HYPER_FLAGS = ("eps", "alpha", "beta", "gamma", "lam", "reg", "steps", "noise", "clip", "init",
               "bn_mode", "linearization")


def parse_value(text: str):
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return parse_number(text)
    except argparse.ArgumentTypeError:
        return text.strip()


def parse_assignment(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), parse_value(value)


def _preset_help(key: str) -> str:
    """'15 on digits, 30 on cifar10/cifar100, or the resumed run's': a preset's default."""
    by_value: dict = {}
    for dataset, values in DATASET_DEFAULTS.items():
        by_value.setdefault(values[key], []).append(dataset)
    listed = ", ".join(f"{value} on {'/'.join(names)}" for value, names in by_value.items())
    return f"(default: {listed}, or the resumed run's)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fastadv import methods, models

    parser.add_argument("--method", default=None,
                        help=f"one of: {', '.join(methods.available())} (default: "
                        f"{DEFAULT_METHOD}, or the resumed run's method)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        type=parse_assignment, help="method hyperparameter, repeatable "
                        "(e.g. --set beta=6 --set eps=8/255)")
    for flag in HYPER_FLAGS:
        numeric = flag not in ("init", "bn_mode", "linearization")
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                            type=parse_number if numeric else str,
                            help=f"method hyperparameter {flag} (same as --set {flag}=...)")
    parser.add_argument("--model", default=None,
                        help=f"one of: {', '.join(models.available())} {_preset_help('model')}")
    parser.add_argument("--dataset", default=None, choices=("digits", "cifar10", "cifar100"),
                        help="default: digits, or the resumed run's data set")
    parser.add_argument("--data-dir", default=None, help="folder holding the CIFAR python archives")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs of the whole run {_preset_help('epochs')}")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"images per step {_preset_help('batch_size')}")
    parser.add_argument("--lr", type=parse_number, default=None,
                        help=f"peak learning rate {_preset_help('lr')}")
    parser.add_argument("--schedule", default=None,
                        choices=("cyclic", "piecewise", "cosine", "constant"),
                        help="LR schedule (default: cyclic, or the resumed run's)")
    parser.add_argument("--run-dir", default=None, help="default: runs/METHOD-DATASET-TIME, or "
                        "the resumed run directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run a fresh --run-dir already holds and start over "
                        "(without it, such a run directory is refused)")
    parser.add_argument("--resume", default=None,
                        help="run directory or last.pt to continue; the method, its "
                        "hyperparameters, data set, model and training settings not given on "
                        "the command line are taken from the resumed run")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    parser.add_argument("--seed", type=int, default=None, help="default: 0, or the resumed run's")
    parser.add_argument("--val-size", type=parse_number, default=None,
                        help="validation images held out of the training set: a fraction "
                        f"(0.1) or an int count (500) {_preset_help('val_size')}")
    parser.add_argument("--amp", default=None, choices=("bf16", "fp16", "off"),
                        help="mixed precision on CUDA (default bf16; always off on CPU)")
    from fastadv.training.compiled import COMPILE_MODES
    parser.add_argument("--compile", nargs="?", const=True, default=False, metavar="MODE",
                        choices=COMPILE_MODES,
                        help="compile the model's passes with torch.compile (default: off); "
                        "MODE: default (the same as --compile alone), max-autotune, "
                        "max-autotune-no-cudagraphs, or reduce-overhead: also the whole step "
                        "as one CUDA graph (CUDA only)")
    parser.add_argument("--guard", default=None, action=argparse.BooleanOptionalAction,
                        help="Fast AT's catastrophic-overfitting guard (default: on for fast_at)")
    parser.add_argument("--eval-steps", type=int, default=20,
                        help="PGD steps of the final test evaluation")
    parser.add_argument("--progress", default=None, action=argparse.BooleanOptionalAction,
                        help="a bar for the run and one line per epoch (default: the bar on a "
                        "terminal; elsewhere the lines only); --no-progress prints neither")


def resumed_run(resume) -> dict:
    """The last checkpoint of the run ``resume`` (a run directory or a last.pt), {} when None."""
    if resume is None:
        return {}
    from fastadv import checkpoint

    return checkpoint.load_checkpoint(resume, which="last")


def check_epochs_left(args, resumed: dict) -> None:
    """``--resume RUN --epochs N`` with N below the epochs RUN has done would train nothing:
    an error (train() itself only warns, as a Python caller may just want the report)."""
    done = resumed.get("epoch")
    if args.epochs is not None and isinstance(done, int) and args.epochs < done:
        raise ValueError(f"--epochs {args.epochs} is below the {done} epochs {args.resume} has "
                         f"already trained, so nothing would be trained; to extend the run "
                         f"pass --epochs {done + 5} (any number above {done})")


def fill_defaults(args, config: Optional[dict] = None) -> None:
    """Fill what the command line left out (None) from the resumed run's ``config``, else
    from the embedded default, so that ``--resume RUN`` continues RUN's method and settings."""
    config = config or {}
    method = config.get("method") if isinstance(config.get("method"), dict) else {}
    if args.method is None:
        args.method = method.get("method") or DEFAULT_METHOD
    if args.dataset is None:
        dataset = config.get("dataset")
        args.dataset = dataset if dataset in DATASET_DEFAULTS else "digits"
    if args.schedule is None:
        args.schedule = config.get("schedule", "cyclic")
    if args.seed is None:
        args.seed = config.get("seed", 0)
    for key in ("epochs", "batch_size", "lr", "val_size"):
        if getattr(args, key) is None and config.get(key) is not None:
            setattr(args, key, config[key])
    spec = config.get("model_spec")
    if args.model is None and isinstance(spec, dict) and spec.get("name"):
        args.model = spec["name"]
    # the resumed method's resolved hyperparameters, when the method is unchanged
    args.resumed_options = ({k: v for k, v in method.items() if k != "method"}
                            if method.get("method") == args.method else {})
    args.resumed_model_spec = spec if isinstance(spec, dict) and spec.get("name") == args.model \
        else None


def method_options(args) -> dict:
    from fastadv import methods

    if args.method is None or args.dataset is None:
        fill_defaults(args)
    valid = methods.fields(args.method)
    options = {k: v for k, v in getattr(args, "resumed_options", {}).items() if k in valid}
    for key, value in args.overrides:
        options[key] = value
    for flag in HYPER_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            if flag not in valid:
                raise ValueError(f"--{flag.replace('_', '-')} does not apply to method "
                                 f"{args.method!r}; its hyperparameters are {list(valid)}")
            options[flag] = value
    for key, value in presets.method_options(args.method, args.dataset, valid).items():
        options.setdefault(key, value)
    return options


def _given(value, default):
    """The command-line value unless it was left out (0 is a value: --lr 0 means lr 0)."""
    return default if value is None else value


def run(args) -> int:
    import torch

    from fastadv.training.distributed import command_session

    threads = torch.get_num_threads()
    try:
        with command_session():  # under torchrun: rank 0 prints; the process group ends
            return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    import torch

    import fastadv
    from fastadv import checkpoint, data, methods, models
    from fastadv._checks import check_device
    from fastadv.evaluation import evaluate
    from fastadv.training.compiled import fast_path_summary
    from fastadv.training.data import holdout_count
    from fastadv.training.distributed import agree, is_main_process, join

    device = check_device("--device", args.device or
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    device = join(device)  # under torchrun: the process group, and this rank's device
    resumed = resumed_run(args.resume)
    check_epochs_left(args, resumed)
    config = resumed.get("config")
    fill_defaults(args, config if isinstance(config, dict) else {})
    defaults = DATASET_DEFAULTS[args.dataset]
    method = methods.get(args.method, **method_options(args))
    train_set = data.load(args.dataset, root=args.data_dir, split="train")
    test_set = data.load(args.dataset, root=args.data_dir, split="test")
    val_size = _given(args.val_size, defaults["val_size"])
    n_train = len(train_set) - holdout_count(val_size, len(train_set))
    if device.type == "cpu" and args.dataset == "digits":
        # batches of 8x8 images gain nothing from intra-op threads, and spinning OpenMP
        # threads slow a run several-fold when the cores are shared with other work. train()
        # records the count in config.json: it changes float sums, so a Python run matches
        # this one bit for bit only with the same count (README, torch.set_num_threads(1))
        torch.set_num_threads(1)
    model_name = args.model or defaults["model"]
    extra = presets.model_options(model_name, args.dataset)
    torch.manual_seed(args.seed)  # the initial weights belong to the seeded run too
    if getattr(args, "resumed_model_spec", None):
        model = checkpoint.model_from_spec(args.resumed_model_spec)
    else:
        model = models.get(model_name, num_classes=train_set.num_classes,
                           in_channels=train_set.x.shape[1], mean=train_set.mean,
                           std=train_set.std, **extra)
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = (args.resume if args.resume and Path(args.resume).is_dir() else
                   f"runs/{method.name}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = agree(run_dir)  # under torchrun: rank 0's name (it holds rank 0's clock)
    eps = getattr(method, "eps", None)
    print(f"fastadv train: {method.name} on {args.dataset} ({n_train} training images, "
          f"{len(train_set) - n_train} held out for validation), model {model_name}, "
          f"eps={eps:.4g}, device {device}, run dir {run_dir}", flush=True)
    print(f"  hyperparameters: {json.dumps(method.resolved())}", flush=True)

    amp = False if args.amp == "off" else args.amp
    compile = getattr(args, "compile", False)
    print("  " + fast_path_summary(device, train_set.x.shape[1], amp=amp, compile=compile),
          flush=True)  # what a GPU run uses with no flags: bf16, channels_last, fused ops
    result = fastadv.train(
        model, method, train_set, epochs=_given(args.epochs, defaults["epochs"]),
        batch_size=_given(args.batch_size, defaults["batch_size"]),
        lr=_given(args.lr, defaults["lr"]),
        schedule=args.schedule, seed=args.seed, device=device, amp=amp, compile=compile,
        guard=args.guard,
        val_size=val_size, run_dir=run_dir, resume=args.resume, overwrite=args.overwrite,
        progress=args.progress, dataset=args.dataset)
    best, info = checkpoint.load_model(run_dir, which="best", device=device)
    # the same evaluation as `fastadv eval RUN --attacks clean,pgd-K`, so the numbers agree
    record = evaluate(best, test_set, attacks=("clean", f"pgd-{args.eval_steps}"),
                      eps=eps or 0.0, seed=args.seed, device=device, progress=args.progress)
    clean, robust = record["clean_accuracy"], record["robust_accuracy"]
    summary = {"method": method.name, "dataset": args.dataset, "best_epoch": info["epoch"],
               "n_test": len(test_set), "eps": eps, "attack": f"pgd-{args.eval_steps} (step eps/4)",
               "clean_accuracy": clean, "robust_accuracy": robust,
               "train_seconds": result.seconds}
    if is_main_process():  # one writer under torchrun
        Path(run_dir, "test_results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"best checkpoint (epoch {info['epoch']}) on the {args.dataset} test split "
          f"({len(test_set)} images): clean {100 * clean:.2f}%, PGD-{args.eval_steps} robust "
          f"{100 * robust:.2f}% at eps={eps:.4g}  [{result.seconds:.0f}s training, {run_dir}]")
    return 0

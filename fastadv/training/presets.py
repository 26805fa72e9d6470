"""Settings per data set, the one source used by `fastadv train`, the end-to-end tests and
benchmarks/digits_methods.py (the README's digits table).

The bundled digits are not CIFAR: 8x8 images with 17 grey levels need a larger radius (0.2)
and, where a CIFAR default is tied to the CIFAR radius or input size, a digits value
(README.md, "Defaults that do not transfer from CIFAR"). A value the user passes always wins
over a preset.
"""
from __future__ import annotations

from typing import Dict

DIGITS_EPS = 0.2

# Method hyperparameters on the digits, per method (eps = DIGITS_EPS for all):
# - PGD / TRADES steps of 2/255 cannot cross eps = 0.2 in a few steps: eps/4 (PGD), 0.08 with
#   3 steps (TRADES; 10 steps add nothing here but time);
# - GradAlign's reg formula 0.02*10**(eps*255/8) is fitted to CIFAR radii (4.7e4 at 0.2): 0.1;
#   the paper's zero-start FGSM of step eps gave 31% PGD-20 on the digits, the random start
#   with a 1.25*eps step (Fast AT's, also run with GradAlign in its paper) 39%;
# - Fast-BAT's alpha scales a raw input gradient: fastadv.methods.suggest_alpha measured ~8 on
#   a briefly trained digits model;
# - N-FGSM's unclipped noise of 2*eps reaches 0.6 of the pixel range at eps = 0.2 (19% PGD-20
#   on the digits); clipping the perturbation to 1.5*eps gave 40-44% over 5 seeds.
DIGITS_METHOD_OPTIONS: Dict[str, dict] = {
    "pgd_at": {"alpha": DIGITS_EPS / 4},
    "trades": {"steps": 3, "alpha": 0.08},
    "grad_align": {"reg": 0.1, "init": "uniform", "alpha": 0.25},
    "fast_bat": {"alpha": 8.0},
    "n_fgsm": {"clip": 1.5},
}

# Training settings per data set: epochs, per-process batch size, peak LR, model, held-out
# validation share or count.
DATASET_DEFAULTS: Dict[str, dict] = {
    "digits": dict(epochs=15, batch_size=64, lr=0.1, model="small_cnn", val_size=0.1),
    "cifar10": dict(epochs=30, batch_size=128, lr=0.2, model="preact_resnet18", val_size=5000),
    "cifar100": dict(epochs=30, batch_size=128, lr=0.2, model="preact_resnet18", val_size=5000),
}

# Keyword arguments of fastadv.models.get per model name on the digits.
DIGITS_MODEL_OPTIONS: Dict[str, dict] = {"small_cnn": {"width": 16, "batch_norm": True}}


def method_options(method: str, dataset: str, valid_fields) -> dict:
    """The preset hyperparameters of ``method`` on ``dataset`` (only fields it has)."""
    if dataset != "digits":
        return {}
    options = {"eps": DIGITS_EPS, **DIGITS_METHOD_OPTIONS.get(method, {})}
    return {k: v for k, v in options.items() if k in valid_fields}


def model_options(model: str, dataset: str) -> dict:
    """Extra keyword arguments of fastadv.models.get for ``model`` on ``dataset``."""
    return dict(DIGITS_MODEL_OPTIONS.get(model, {})) if dataset == "digits" else {}


def digits_model(data) -> "torch.nn.Module":
    """The digits preset's model for the data set ``data`` (an ImageData); the caller seeds
    torch first, since the initial weights belong to the run."""
    from fastadv import models

    name = DATASET_DEFAULTS["digits"]["model"]
    return models.get(name, num_classes=data.num_classes, in_channels=data.x.shape[1],
                      mean=data.mean, std=data.std, **model_options(name, "digits"))


def digits_training(method: str) -> dict:
    """Keyword arguments of fastadv.train for ``method`` with the digits preset: epochs, batch
    size, LR and the method's digits hyperparameters."""
    from fastadv import methods

    defaults = DATASET_DEFAULTS["digits"]
    return dict(epochs=defaults["epochs"], batch_size=defaults["batch_size"], lr=defaults["lr"],
                method_options=method_options(method, "digits", methods.fields(method)))

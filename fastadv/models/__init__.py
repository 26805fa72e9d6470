"""Models for fastadv: every one starts with a Normalize layer, so it takes images in [0, 1].

    model = fastadv.models.get("preact_resnet18", num_classes=10, mean=data.mean, std=data.std)

Architectures (one file each): PreActResNet-18 (Fast AT, Fast-BAT), ResNet-18 (CIFAR
variant), WideResNet (WRN-34-10, WRN-16-8, any depth 6n+4), and a small CNN for small
inputs; activations relu / softplus / swish.
"""
from .activations import activation_names
from .mode import bn_mode, eval_mode
from .normalize import Normalize
from .preact_resnet import PreActResNet
from .registry import NormalizedModel, available, extra_arguments, get
from .resnet import ResNet
from .small_cnn import SmallCNN
from .wide_resnet import WideResNet

__all__ = ["get", "available", "extra_arguments", "bn_mode", "eval_mode", "activation_names", "Normalize",
           "NormalizedModel", "PreActResNet", "ResNet", "WideResNet", "SmallCNN"]

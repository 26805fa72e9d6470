"""fastadv.models: every architecture builds, has the right size, and maps [0, 1] images to logits."""
import pytest
import torch
from torch import nn

from fastadv import models
from fastadv.models import Normalize

# full-size parameter counts of the standard networks (the papers' tables quote 11.2M / 46.2M);
# Fast AT's PreActResNet-18 has a final BN over 512 channels (+1,024 over the plain one)
FULL_SIZE_PARAMS = {
    "preact_resnet18": 11_172_170,
    "resnet18": 11_173_962,
    "wrn34_10": 46_160_474,
    "wrn16_8": 10_961_370,
}

# tiny variants of every architecture: (name, extra kwargs)
TINY = [
    ("preact_resnet18", dict(width=4)),
    ("resnet18", dict(width=4)),
    ("wide_resnet", dict(depth=10, widen_factor=1)),
    ("small_cnn", dict(width=4)),
]


def test_available_lists_every_name():
    assert set(models.available()) == {"preact_resnet18", "resnet18", "wrn34_10", "wrn16_8",
                                       "wide_resnet", "small_cnn"}


@pytest.mark.parametrize("name", sorted(FULL_SIZE_PARAMS))
def test_full_size_parameter_counts(name):
    model = models.get(name)
    assert sum(p.numel() for p in model.parameters()) == FULL_SIZE_PARAMS[name]


def test_wide_resnet_presets_match_generic():
    preset = models.get("wrn16_8")
    generic = models.get("wide_resnet", depth=16, widen_factor=8)
    assert [p.shape for p in preset.parameters()] == [p.shape for p in generic.parameters()]


@pytest.mark.parametrize("name,kwargs", TINY)
@pytest.mark.parametrize("size,channels", [(32, 3), (8, 1)])
def test_forward_and_backward_shapes(name, kwargs, size, channels):
    torch.manual_seed(0)
    model = models.get(name, num_classes=7, in_channels=channels, **kwargs)
    x = torch.rand(2, channels, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.shape == x.shape and grad.abs().sum() > 0


def test_full_preact_resnet18_forward_on_cifar_sized_input():
    model = models.get("preact_resnet18").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_small_cnn_works_for_larger_inputs():
    model = models.get("small_cnn", in_channels=3, width=2)
    assert model(torch.rand(2, 3, 20, 13)).shape == (2, 10)


def test_first_layer_is_normalize_with_given_statistics():
    model = models.get("small_cnn", in_channels=3, mean=(0.1, 0.2, 0.3), std=[0.5, 0.25, 2.0])
    assert isinstance(model[0], Normalize) and model[0] is model.normalize
    assert model[0].mean.shape == (1, 3, 1, 1)
    assert model[0].mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert model[0].std.flatten().tolist() == pytest.approx([0.5, 0.25, 2.0])
    # the statistics are buffers (saved, moved) and not trainable
    assert "normalize.mean" in model.state_dict()
    assert all(p is not model[0].mean for p in model.parameters())


def test_default_statistics_are_identity():
    model = models.get("small_cnn", in_channels=2)
    x = torch.rand(3, 2, 8, 8)
    assert torch.equal(model[0](x), x)


def test_normalize_computes_per_channel_standardisation():
    norm = Normalize((0.5, -1.0), (2.0, 0.5))
    x = torch.rand(4, 2, 3, 5)
    expected = torch.stack([(x[:, 0] - 0.5) / 2.0, (x[:, 1] + 1.0) / 0.5], dim=1)
    assert torch.allclose(norm(x), expected)


def test_model_equals_network_applied_to_normalized_input():
    torch.manual_seed(0)
    model = models.get("small_cnn", in_channels=1, mean=[0.3], std=[0.4], width=3).eval()
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(model(x), model.net((x - 0.3) / 0.4), atol=1e-6)


@pytest.mark.parametrize("std", [(1.0, 0.0), (1.0, -2.0)])
def test_normalize_rejects_non_positive_std(std):
    with pytest.raises(ValueError, match="std"):
        Normalize((0.0, 0.0), std)


def test_normalize_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same number of channels"):
        Normalize((0.0, 0.0), (1.0,))


@pytest.mark.parametrize("activation,module_type", [
    ("relu", nn.ReLU), ("softplus", nn.Softplus), ("swish", nn.SiLU)])
@pytest.mark.parametrize("name,kwargs", TINY)
def test_activation_choice_is_used_everywhere(name, kwargs, activation, module_type):
    model = models.get(name, activation=activation, **kwargs)
    kinds = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.Softplus, nn.SiLU))}
    assert kinds == {module_type}


def test_swish_changes_the_function():
    torch.manual_seed(0)
    relu_model = models.get("small_cnn", width=3)
    torch.manual_seed(0)
    swish_model = models.get("small_cnn", width=3, activation="swish")
    x = torch.rand(2, 3, 8, 8)
    assert not torch.allclose(relu_model(x), swish_model(x))


def test_spec_rebuilds_the_same_architecture():
    model = models.get("wide_resnet", depth=10, widen_factor=2, num_classes=5,
                       mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0), activation="softplus")
    assert model.spec["name"] == "wide_resnet" and model.spec["depth"] == 10
    rebuilt = models.get(**model.spec)
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
    x = torch.rand(2, 3, 8, 8)
    model.eval(), rebuilt.eval()
    assert torch.allclose(model(x), rebuilt(x))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="preact_resnet18"):
        models.get("resnet1000")


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="softplus"):
        models.get("small_cnn", activation="tanh")


@pytest.mark.parametrize("num_classes,error", [(0, ValueError), (1, ValueError),
                                               (-3, ValueError), (2.5, TypeError),
                                               (True, TypeError)])
def test_bad_num_classes(num_classes, error):
    with pytest.raises(error, match="num_classes"):
        models.get("small_cnn", num_classes=num_classes)


@pytest.mark.parametrize("depth", [33, 12, 4, "34"])
def test_wide_resnet_depth_must_be_6n_plus_4(depth):
    with pytest.raises(ValueError, match="depth"):
        models.get("wide_resnet", depth=depth)


def test_unknown_architecture_argument_names_accepted_ones():
    with pytest.raises(ValueError, match="width"):
        models.get("small_cnn", depth=10)
    with pytest.raises(ValueError, match="depth"):
        models.get("wrn34_10", depth=16)  # a preset fixes its depth


def test_mean_must_match_in_channels():
    with pytest.raises(ValueError, match="in_channels"):
        models.get("small_cnn", in_channels=3, mean=[0.5], std=[0.2])


@pytest.mark.parametrize("width,error", [(0, ValueError), (-1, ValueError), (1.5, TypeError)])
def test_bad_width(width, error):
    with pytest.raises(error, match="width"):
        models.get("small_cnn", width=width)

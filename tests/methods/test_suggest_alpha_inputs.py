"""fastadv.methods.suggest_alpha takes what fastadv.data.load returns: uint8 images, or the
ImageData itself (README, "how to choose Fast-BAT's alpha")."""
import pytest
import torch

import fastadv
from fastadv.methods import suggest_alpha


@pytest.fixture(scope="module")
def digits_and_model():
    train = fastadv.data.load("digits")
    torch.manual_seed(0)
    model = fastadv.models.get("small_cnn", in_channels=1, mean=train.mean, std=train.std,
                               width=8)
    return train, model


def test_uint8_batches_and_image_data_give_the_float_batch_answer(digits_and_model):
    train, model = digits_and_model
    x, y = train.x[:256], train.y[:256]
    assert x.dtype == torch.uint8
    expected = suggest_alpha(model, x.float() / 255, y, 0.2)
    assert suggest_alpha(model, x, y, 0.2) == pytest.approx(expected)
    assert suggest_alpha(model, train, eps=0.2) == pytest.approx(expected)  # its first 256


def test_image_data_takes_no_separate_labels(digits_and_model):
    train, model = digits_and_model
    with pytest.raises(TypeError, match="y must be None when x is an ImageData"):
        suggest_alpha(model, train, train.y, 0.2)
    with pytest.raises(TypeError, match="eps must be a real number"):
        suggest_alpha(model, train)

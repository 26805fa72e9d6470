"""Data for fastadv: labelled uint8 image sets and a device-resident loader.

    train = fastadv.data.load("digits")                   # bundled, no files needed
    test = fastadv.data.load("cifar10", root="data", split="test")
    loader = fastadv.data.DeviceLoader(train, 128, device="cuda")
    for x, y in loader: ...                                # x float in [0, 1] on the device

Images reach the methods in [0, 1]; normalization (ImageData.mean / .std) lives in the model.
"""
from .cifar import default_root
from .convert import as_float_images
from .device_loader import DeviceLoader, default_crop_padding, random_crop, random_flip
from .image_data import ImageData
from .loading import available, load

__all__ = ["load", "available", "ImageData", "DeviceLoader", "as_float_images", "default_root",
           "default_crop_padding", "random_crop", "random_flip"]

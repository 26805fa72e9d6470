"""fastadv.data: the bundled digits, CIFAR from its archive format, ImageData, DeviceLoader."""
import pickle

import numpy as np
import pytest
import torch

from fastadv import data
from fastadv.data import DeviceLoader, ImageData


def make_data(n=10, c=1, h=8, w=8, num_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % num_classes
    return ImageData(x, y, num_classes, (0.5,) * c, (0.25,) * c, "toy")


def indexed_data(n, c=1, h=8, w=8):
    """Images whose every pixel is nonzero and whose first pixel is the image index + 1."""
    x = torch.full((n, c, h, w), 200, dtype=torch.uint8)
    x[:, :, 0, 0] = torch.arange(1, n + 1, dtype=torch.uint8)[:, None]
    return ImageData(x, torch.arange(n) % 2, 2, (0.5,) * c, (0.5,) * c, "toy")


# ---------------------------------------------------------------- bundled digits

def test_digits_counts_types_and_ranges():
    train = data.load("digits")
    test = data.load("digits", split="test")
    assert (len(train), len(test)) == (1437, 360)
    for part in (train, test):
        assert part.x.dtype == torch.uint8 and part.x.shape[1:] == (1, 8, 8)
        assert part.y.dtype == torch.int64
        assert part.num_classes == 10 and part.name == "digits"
        assert set(part.y.tolist()) == set(range(10))  # every class in both splits
        assert int(part.x.min()) == 0 and int(part.x.max()) == 255
    # stratified: each class has a share of the test set close to its share overall
    counts = torch.bincount(test.y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_digits_split_is_fixed_and_disjoint():
    a, b = data.load("digits"), data.load("digits")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    test = data.load("digits", split="test")
    train_rows = {bytes(row) for row in a.x.reshape(len(a), -1).numpy()}
    test_rows = [bytes(row) for row in test.x.reshape(len(test), -1).numpy()]
    assert not any(row in train_rows for row in test_rows)  # no test image is in train


def test_digits_statistics_come_from_train_split():
    train = data.load("digits")
    pixels = train.x.double() / 255
    assert train.mean[0] == pytest.approx(pixels.mean().item(), rel=1e-6)
    assert train.std[0] == pytest.approx(pixels.std(unbiased=False).item(), rel=1e-6)


def test_load_rejects_unknown_name_and_split():
    with pytest.raises(ValueError, match="cifar10"):
        data.load("mnist")
    with pytest.raises(ValueError, match="split"):
        data.load("digits", split="valid")


# ---------------------------------------------------------------- CIFAR archives

def write_batch(path, images, labels, label_key):
    with open(path, "wb") as handle:
        pickle.dump({b"batch_label": b"fake", label_key: labels,
                     b"data": images.reshape(len(images), -1)}, handle, protocol=2)


def fake_cifar10(root, per_batch=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    all_images = []
    for i in range(1, 6):
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        write_batch(folder / f"data_batch_{i}", images, [i % 10] * per_batch, b"labels")
        all_images.append(images)
    test_images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    write_batch(folder / "test_batch", test_images, [7, 9], b"labels")
    return folder, np.concatenate(all_images), test_images


def test_cifar10_from_parent_or_folder(tmp_path):
    folder, train_images, test_images = fake_cifar10(tmp_path)
    for root in (tmp_path, folder, str(folder)):
        train = data.load("cifar10", root=root)
        assert len(train) == 15 and train.x.shape[1:] == (3, 32, 32)
        # the flat rows are R, G, B planes: the reshape must restore them exactly
        assert torch.equal(train.x, torch.from_numpy(train_images))
        assert train.y.tolist() == [i % 10 for i in range(1, 6) for _ in range(3)]
        assert train.num_classes == 10 and train.name == "cifar10"
        assert train.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    test = data.load("cifar10", root=tmp_path, split="test")
    assert torch.equal(test.x, torch.from_numpy(test_images)) and test.y.tolist() == [7, 9]


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    for split in ("train", "test"):
        with open(folder / split, "wb") as handle:
            pickle.dump({b"data": images.reshape(2, -1), b"fine_labels": [42, 99],
                         b"coarse_labels": [1, 2]}, handle)
    loaded = data.load("cifar100", root=tmp_path, split="test")
    assert loaded.y.tolist() == [42, 99] and loaded.num_classes == 100


def test_missing_cifar_files_are_named(tmp_path):
    folder, _, _ = fake_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", root=tmp_path)
    message = str(info.value)
    assert "data_batch_3" in message and "data_batch_2" not in message
    assert "cifar-10-python.tar.gz" in message  # tells where to get it
    # the test split is still complete and loads
    assert len(data.load("cifar10", root=tmp_path, split="test")) == 2


def test_missing_cifar_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        data.load("cifar100", root=tmp_path / "nowhere")


# ---------------------------------------------------------------- ImageData

def test_image_data_validation():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="same length"):
        ImageData(x, torch.zeros(3, dtype=torch.long), 10, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="labels"):
        ImageData(x, torch.tensor([0, 1, 2, 10]), 10, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="labels"):
        ImageData(x, torch.tensor([0, 1, -1, 2]), 10, (0.5,), (0.5,))
    with pytest.raises(TypeError, match="uint8"):
        ImageData(x.float(), torch.zeros(4, dtype=torch.long), 10, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std"):
        ImageData(x, torch.zeros(4, dtype=torch.long), 10, (0.5,), (0.0,))
    with pytest.raises(ValueError, match="mean"):
        ImageData(x, torch.zeros(4, dtype=torch.long), 10, (0.5, 0.5), (0.5,))
    int32 = ImageData(x, torch.zeros(4, dtype=torch.int32), 10, [0.5], [0.5])
    assert int32.y.dtype == torch.int64 and int32.mean == (0.5,) and len(int32) == 4


def test_split_is_seeded_disjoint_and_complete():
    whole = indexed_data(50)
    rest, holdout = whole.split(12, seed=3)
    assert (len(rest), len(holdout)) == (38, 12)
    ids = lambda part: part.x[:, 0, 0, 0].tolist()  # noqa: E731
    assert sorted(ids(rest) + ids(holdout)) == list(range(1, 51))
    assert ids(rest) == sorted(ids(rest))  # original order kept
    again = whole.split(12, seed=3)[1]
    other = whole.split(12, seed=4)[1]
    assert ids(again) == ids(holdout) and ids(other) != ids(holdout)
    assert holdout.mean == whole.mean and holdout.num_classes == whole.num_classes
    assert len(whole.split(0, seed=0)[1]) == 0


@pytest.mark.parametrize("n_holdout", [-1, 50, 51, 2.0])
def test_split_rejects_bad_sizes(n_holdout):
    with pytest.raises(ValueError, match="n_holdout"):
        indexed_data(50).split(n_holdout, seed=0)


# ---------------------------------------------------------------- DeviceLoader

def test_eval_loader_covers_every_sample_in_order_with_last_batch():
    source = indexed_data(10)
    loader = DeviceLoader(source, 4, train=False)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, source.x.float() / 255)  # no crop, no flip, order kept
    assert torch.equal(torch.cat([b[1] for b in batches]), source.y)


def test_train_loader_drops_last_partial_batch_and_shuffles_without_repeats():
    loader = DeviceLoader(indexed_data(10), 4, train=True, crop_padding=0, flip=False)
    assert len(loader) == 2
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4]
    ids = [int(round(v * 255)) for x, _ in batches for v in x[:, 0, 0, 0].tolist()]
    assert len(set(ids)) == 8 and set(ids) <= set(range(1, 11))


def test_every_epoch_reshuffles_and_set_epoch_reproduces():
    loader = DeviceLoader(indexed_data(64), 8, seed=1, crop_padding=0)

    def epoch_ids():
        return torch.cat([x[:, 0, 0, 0] for x, _ in loader]).tolist()

    first, second = epoch_ids(), epoch_ids()
    assert first != second  # a new shuffle each time through
    loader.set_epoch(0)
    assert epoch_ids() == first
    loader.set_epoch(1)
    assert epoch_ids() == second
    other_seed = DeviceLoader(indexed_data(64), 8, seed=2, crop_padding=0)
    assert torch.cat([x[:, 0, 0, 0] for x, _ in other_seed]).tolist() != first


def test_augmentation_is_reproducible_per_epoch():
    source = make_data(n=32, c=3, h=8, w=8)
    loader = DeviceLoader(source, 16, seed=0, crop_padding=2, flip=True)
    loader.set_epoch(5)
    a = [x for x, _ in loader]
    loader.set_epoch(5)
    b = [x for x, _ in loader]
    assert len(a) == len(b) == 2
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_crop_is_a_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    source = make_data(n=64, c=2, h=6, w=5)
    pad = 2
    loader = DeviceLoader(source, 64, train=True, crop_padding=pad, flip=False)
    (x, y), = list(loader)
    padded = torch.nn.functional.pad(source.x.float() / 255, (pad,) * 4)
    windows_seen = set()
    for image in x:
        matches = [(i, t, l) for i in range(len(source)) for t in range(2 * pad + 1)
                   for l in range(2 * pad + 1)
                   if torch.equal(padded[i, :, t:t + 6, l:l + 5], image)]
        assert matches, "a cropped image is not a window of any padded source image"
        windows_seen.add(matches[0][1:])
    assert len(windows_seen) > 5  # offsets vary across the batch
    assert x.shape == (64, 2, 6, 5)


def test_flip_mirrors_about_half_of_the_images():
    source = make_data(n=400, c=3, h=4, w=4)
    loader = DeviceLoader(source, 400, crop_padding=0, flip=True, seed=0)
    (x, y), = list(loader)
    # the shuffle reorders, so match each output to some source image
    originals = source.x.float() / 255
    flipped = 0
    for image in x:
        same = (originals == image).flatten(1).all(1).any()
        mirrored = (originals.flip(3) == image).flatten(1).all(1).any()
        assert same or mirrored
        flipped += int(mirrored and not same)
    assert 150 < flipped < 250


def test_no_augmentation_in_eval_mode():
    source = make_data(n=8, c=3, h=32, w=32)
    loader = DeviceLoader(source, 8, train=False, crop_padding=4, flip=True)
    (x, _), = list(loader)
    assert torch.equal(x, source.x.float() / 255)


def test_default_augmentation_per_image_kind():
    rgb = DeviceLoader(make_data(n=4, c=3, h=32, w=32), 2)
    assert rgb.crop_padding == 4 and rgb.flip is True
    digits = DeviceLoader(data.load("digits"), 32)
    assert digits.crop_padding == 1 and digits.flip is False
    assert digits.num_classes == 10 and digits.mean == data.load("digits").mean
    assert digits.dataset_size == 1437 and len(digits) == 1437 // 32


def test_outputs_are_floats_in_unit_interval():
    loader = DeviceLoader(data.load("digits", split="test"), 100, train=True)
    batches = list(loader)
    assert len(batches) == 3
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        assert x.device == torch.device("cpu")


def test_tensor_pair_input_uint8_and_float():
    x8 = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3, 4, 4])
    from_uint8 = DeviceLoader((x8, y), 6, train=False)
    from_float = DeviceLoader((x8.float() / 255, y), 6, train=False)
    (a, ya), = list(from_uint8)
    (b, yb), = list(from_float)
    assert torch.allclose(a, b) and torch.equal(ya, y) and torch.equal(yb, y)
    assert from_uint8.num_classes == 5
    assert from_uint8.mean == pytest.approx(tuple((x8.double() / 255).mean((0, 2, 3)).tolist()))


def test_loader_rejects_bad_input():
    source = make_data(n=10)
    for bad in (0, -1):  # wrong value: ValueError; wrong type: TypeError
        with pytest.raises(ValueError, match="batch_size"):
            DeviceLoader(source, bad)
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="batch_size"):
            DeviceLoader(source, bad)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(source, 11, train=True)  # would yield no batch at all
    assert len(DeviceLoader(source, 11, train=False)) == 1
    with pytest.raises(ValueError, match="crop_padding"):
        DeviceLoader(source, 2, crop_padding=-1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DeviceLoader((torch.full((2, 1, 4, 4), 3.0), torch.tensor([0, 1])), 1)
    with pytest.raises(ValueError, match="NaN"):
        DeviceLoader((torch.full((2, 1, 4, 4), float("nan")), torch.tensor([0, 1])), 1)
    with pytest.raises(TypeError, match="ImageData"):
        DeviceLoader([torch.zeros(2, 1, 4, 4)], 1)
    with pytest.raises(ValueError, match="same length"):
        DeviceLoader((torch.zeros(2, 1, 4, 4), torch.tensor([0])), 1)
    with pytest.raises(ValueError, match="empty"):
        DeviceLoader(source.split(0, seed=0)[1], 1, train=False)
    with pytest.raises(ValueError, match="epoch"):
        DeviceLoader(source, 2).set_epoch(-1)


def test_batches_do_not_alias_the_stored_data():
    x = torch.rand(4, 1, 4, 4)
    loader = DeviceLoader((x, torch.tensor([0, 1, 0, 1])), 4, train=False)
    (batch, _), = list(loader)
    batch.zero_()
    (again, _), = list(loader)
    assert torch.equal(again, x)

"""Checkpoint files (fastadv.checkpoint): one clear error for every file that cannot be
loaded, another model's weights named by key and shape, stale temporary files removed, the
umask respected."""
import os
import stat
import zipfile

import pytest
import torch

import fastadv
from fastadv import checkpoint as ckpt
from tests.training.helpers import tiny_data, tiny_model


class NotPlainData:
    """An object a weights_only load refuses (it would need to run code from the file)."""


def small_cnn(width):
    torch.manual_seed(0)
    return fastadv.models.get("small_cnn", num_classes=3, in_channels=1, width=width)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory whose best.pt (epoch 3) and last.pt (epoch 4) are fastadv checkpoints."""
    model = small_cnn(4)
    for which, epoch in (("best", 3), ("last", 4)):
        ckpt.save_atomic({"model_state": model.state_dict(), "model_spec": model.spec,
                          "epoch": epoch}, tmp_path / "checkpoints" / f"{which}.pt")
    return tmp_path


def write_empty(path):
    path.write_bytes(b"")


def write_truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def write_garbage(path):
    path.write_bytes(b"these are not the bytes of a checkpoint\n" * 20)


def write_not_plain_data(path):
    torch.save({"model_state": {}, "extra": NotPlainData()}, path)


def write_foreign_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip, not a checkpoint")


def write_without_model_state(path):
    torch.save({"weights": torch.ones(2)}, path)


DAMAGE = [(write_empty, "is empty"), (write_truncated, "is truncated"),
          (write_garbage, "not a fastadv checkpoint"),
          (write_not_plain_data, "objects other than plain data"),
          (write_foreign_zip, "not a torch.save file"),
          (write_without_model_state, "without the 'model_state'")]


@pytest.mark.parametrize("damage, problem", DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_a_damaged_checkpoint_gives_one_clear_error(run_dir, damage, problem):
    last = run_dir / "checkpoints" / "last.pt"
    damage(last)
    for load in (lambda: ckpt.load_checkpoint(run_dir, which="last"),
                 lambda: ckpt.load_model(run_dir, which="last")):
        with pytest.raises(ValueError) as failure:
            load()
        message = str(failure.value)
        assert str(last) in message and problem in message
        assert "checkpoints/best.pt is intact (epoch 3)" in message
        assert "weights_only" not in message
        # PyTorch's message (it recommends weights_only=False) is not chained in either
        assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_resume_from_a_damaged_checkpoint_names_the_file(tmp_path):
    x, y = tiny_data(n=48)
    kwargs = dict(epochs=2, batch_size=16, lr=0.05, progress=False, val_size=16)
    fastadv.train(tiny_model(), "standard", (x, y), run_dir=tmp_path,
                  callback=lambda record: False, **kwargs)
    write_truncated(tmp_path / "checkpoints" / "last.pt")
    with pytest.raises(ValueError, match="last.pt: the file is truncated.*best.pt is intact"):
        fastadv.train(tiny_model(), "standard", (x, y), resume=tmp_path, **kwargs)


def test_damage_to_both_checkpoints_is_reported(run_dir):
    write_empty(run_dir / "checkpoints" / "best.pt")
    write_garbage(run_dir / "checkpoints" / "last.pt")
    with pytest.raises(ValueError, match="checkpoints/last.pt is damaged too"):
        ckpt.load_checkpoint(run_dir, which="best")


def test_another_models_weights_name_the_first_key_and_both_shapes(tmp_path):
    narrow, wide = small_cnn(4), small_cnn(8)
    path = tmp_path / "mixed.pt"
    ckpt.save_atomic({"model_state": wide.state_dict(), "model_spec": narrow.spec, "epoch": 1},
                     path)
    with pytest.raises(ValueError) as failure:
        ckpt.load_model(path)
    message = str(failure.value)
    assert str(path) in message and "another model's weights" in message
    # the first tensor whose shape differs (the normalization buffers before it fit)
    assert ("'net.features.0.weight' has shape (8, 1, 3, 3) there but (4, 1, 3, 3) in this "
            "model") in message


def test_a_stale_temporary_file_is_removed_at_the_next_save_of_its_file(tmp_path):
    stale_last = tmp_path / ".last.pt.k1ll3d00.tmp"
    stale_best = tmp_path / ".best.pt.k1ll3d00.tmp"
    for stale in (stale_last, stale_best):
        stale.write_bytes(b"half a checkpoint")  # what a kill -9 mid-write leaves
    ckpt.save_atomic({"model_state": {}}, tmp_path / "last.pt")
    assert not stale_last.exists() and stale_best.exists()
    ckpt.save_atomic({"model_state": {}}, tmp_path / "best.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o027, 0o640)])
def test_checkpoint_files_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = ckpt.save_atomic({"model_state": {}}, tmp_path / "last.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode

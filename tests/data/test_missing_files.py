"""A missing CIFAR archive tells both kinds of user how to point at it: --data-dir on the
command line, root= in Python."""
import pytest

import fastadv


def test_missing_cifar_names_data_dir_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data-dir on the command line, root= in "
                                                r"Python \(or set FASTADV_DATA\)"):
        fastadv.data.load("cifar10", root=tmp_path, split="test")

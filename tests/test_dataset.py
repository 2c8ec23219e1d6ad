"""training/dataset.py: ImageFolderDataset over zips and folders in the official layout.

The datasets here are written by hand (PIL + zipfile, the layout of the official StyleGAN2-ADA
tool), not by our dataset_tool, so the reader is checked against the format itself.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from dnnlib.util import UserError
from training.dataset import ImageFolderDataset


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(arr).save(buf, format="png", compress_level=0)
    return buf.getvalue()


def _official_name(k: int) -> str:
    return f"{k // 1000:05d}/img{k:08d}.png"


def make_dataset(
    root: Path,
    images: list[np.ndarray],
    labels=None,
    kind: str = "zip",
    raw_json: str | None = None,
    name: str = "toy",
) -> Path:
    """Write images (HWC or HW uint8) as an official-layout dataset; `labels` a list or None."""
    files = {_official_name(k): _png(a) for k, a in enumerate(images)}
    if raw_json is not None:
        files["dataset.json"] = raw_json.encode()
    elif labels is not None:
        files["dataset.json"] = json.dumps({"labels": [[_official_name(k), l] for k, l in enumerate(labels)]}).encode()
    if kind == "zip":
        path = root / f"{name}.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for n, data in files.items():
                zf.writestr(n, data)
    else:
        path = root / name
        for n, data in files.items():
            (path / n).parent.mkdir(parents=True, exist_ok=True)
            (path / n).write_bytes(data)
    return path


def random_images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("kind", ["zip", "dir"])
def test_reads_images_labels_and_attributes(tmp_path, kind):
    imgs = random_images(5, size=8, channels=3)
    labels = [2, 0, 1, 2, 0]
    path = make_dataset(tmp_path, imgs, labels, kind=kind, name="toyset")
    ds = ImageFolderDataset(path, use_labels=True)
    assert len(ds) == 5
    assert ds.name == "toyset"
    assert ds.path == str(path)
    assert ds.resolution == 8 and ds.num_channels == 3 and ds.image_shape == [3, 8, 8]
    assert ds.has_labels and ds.label_dim == 3 and ds.label_shape == [3]
    for k in range(5):
        img, lab = ds[k]
        assert img.dtype == np.uint8 and img.shape == (3, 8, 8)
        np.testing.assert_array_equal(img, imgs[k].transpose(2, 0, 1))
        assert lab.dtype == np.float32 and lab.shape == (3,)
        np.testing.assert_array_equal(lab, np.eye(3, dtype=np.float32)[labels[k]])
        np.testing.assert_array_equal(ds.get_label(k), lab)


def test_grayscale_is_one_channel_and_unlabelled_has_empty_labels(tmp_path):
    imgs = random_images(3, size=4, channels=1)
    ds = ImageFolderDataset(make_dataset(tmp_path, imgs, labels=None), use_labels=True)
    img, lab = ds[1]
    assert img.shape == (1, 4, 4)
    np.testing.assert_array_equal(img[0], imgs[1])
    assert lab.shape == (0,) and not ds.has_labels and ds.label_dim == 0


def test_use_labels_false_ignores_labels(tmp_path):
    ds = ImageFolderDataset(make_dataset(tmp_path, random_images(3), [0, 1, 1]), use_labels=False)
    assert ds[0][1].shape == (0,) and ds.label_shape == [0] and not ds.has_labels


def test_labels_null_and_float_vector_labels(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ds = ImageFolderDataset(make_dataset(tmp_path / "a", random_images(2), raw_json='{"labels": null}'), use_labels=True)
    assert not ds.has_labels
    vecs = [[0.5, -1.0], [2.0, 3.25]]
    ds = ImageFolderDataset(make_dataset(tmp_path / "b", random_images(2), vecs), use_labels=True)
    assert ds.label_shape == [2]
    np.testing.assert_array_equal(ds.get_label(1), np.array([2.0, 3.25], np.float32))


def test_xflip_doubles_and_mirrors(tmp_path):
    imgs = random_images(3, size=4)
    ds = ImageFolderDataset(make_dataset(tmp_path, imgs, [0, 1, 2]), use_labels=True, xflip=True)
    assert len(ds) == 6
    for k in range(3):
        a, la = ds[k]
        b, lb = ds[k + 3]
        np.testing.assert_array_equal(b, a[:, :, ::-1])
        np.testing.assert_array_equal(la, lb)
        assert ds.get_details(k + 3).xflip and not ds.get_details(k).xflip
        assert b.flags["C_CONTIGUOUS"]


def test_max_size_is_a_seeded_sorted_subset(tmp_path):
    imgs = [np.full((4, 4, 3), k, np.uint8) for k in range(20)]
    path = make_dataset(tmp_path, imgs, list(range(20)))
    subsets = []
    for seed in (0, 0, 1):
        ds = ImageFolderDataset(path, use_labels=True, max_size=5, random_seed=seed)
        assert len(ds) == 5
        values = [int(ds[k][0][0, 0, 0]) for k in range(5)]
        assert values == sorted(values) and len(set(values)) == 5
        # the label follows the image: image k has class k
        assert [int(np.argmax(ds.get_label(k))) for k in range(5)] == values
        subsets.append(values)
    assert subsets[0] == subsets[1] and subsets[0] != subsets[2]
    assert len(ImageFolderDataset(path, max_size=100)) == 20


def test_resolution_mismatch_and_non_square_raise_user_error(tmp_path):
    (tmp_path / "sq").mkdir()
    (tmp_path / "rect").mkdir()
    path = make_dataset(tmp_path / "sq", random_images(2, size=8))
    with pytest.raises(UserError, match="resolution 16"):
        ImageFolderDataset(path, resolution=16)
    assert ImageFolderDataset(path, resolution=8).resolution == 8
    rect = make_dataset(tmp_path / "rect", [np.zeros((4, 8, 3), np.uint8)])
    with pytest.raises(UserError, match="square"):
        ImageFolderDataset(rect)


def test_inconsistent_shapes_raise_user_error_naming_the_file(tmp_path):
    imgs = random_images(2, size=8) + [np.zeros((8, 8), np.uint8)]
    ds = ImageFolderDataset(make_dataset(tmp_path, imgs))
    ds[0]
    with pytest.raises(UserError, match="img00000002.png"):
        ds[2]


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("{not json", "not valid JSON"),
        ('{"lables": []}', "no 'labels' key"),
        ('{"labels": 3}', "not a list"),
        ('{"labels": [["00000/img00000000.png"]]}', "not \\[path, label\\]"),
        ('{"labels": [["00000/img00000000.png", "cat"], ["00000/img00000001.png", 0]]}', "label of"),
        ('{"labels": [["00000/img00000000.png", -1], ["00000/img00000001.png", 0]]}', "negative"),
        ('{"labels": [["00000/img00000000.png", 0], ["00000/img00000001.png", [1.0]]]}', "does not match"),
        ('{"labels": [["00000/img00000000.png", 0], ["00000/img00000001.png", 1], ["nope.png", 1]]}', "nope.png"),
        ('{"labels": [["00000/img00000000.png", 0]]}', "no label for 1 image"),
    ],
)
def test_malformed_dataset_json_raises_user_error(tmp_path, raw, fragment):
    path = make_dataset(tmp_path, random_images(2), raw_json=raw)
    with pytest.raises(UserError, match=fragment):
        ImageFolderDataset(path, use_labels=True)
    assert len(ImageFolderDataset(path, use_labels=False)) == 2  # labels unused: still readable


def test_bad_paths_raise_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ImageFolderDataset(tmp_path / "missing.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip")
    with pytest.raises(UserError, match="cannot read dataset zip"):
        ImageFolderDataset(tmp_path / "bad.zip")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="neither a folder nor a .zip"):
        ImageFolderDataset(tmp_path / "notes.txt")


def test_kwargs_dict_builds_it(tmp_path):
    from dnnlib.util import construct_class_by_name

    path = make_dataset(tmp_path, random_images(4), [0, 1, 0, 1])
    kwargs = dict(class_name="training.dataset.ImageFolderDataset", path=str(path), use_labels=True,
                  max_size=3, xflip=True, resolution=8, random_seed=0)
    ds = construct_class_by_name(**kwargs)
    assert len(ds) == 6 and ds.label_dim == 2


def test_pickle_and_dataloader_workers_match_direct_reads(tmp_path):
    imgs = random_images(24, size=8)
    labels = [k % 4 for k in range(24)]
    ds = ImageFolderDataset(make_dataset(tmp_path, imgs, labels), use_labels=True)
    ds[0]  # open the zip handle in this process before pickling / forking
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[5][0], ds[5][0])
    direct = np.stack([ds[k][0] for k in range(24)])
    direct_labels = np.stack([ds[k][1] for k in range(24)])
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2, shuffle=False)
    got = [(x.numpy(), c.numpy()) for x, c in loader]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), direct)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), direct_labels)

"""dataset_tool.py: sources, options, output format, every bad-input case, and the real datasets.

Bad input must give exit status 2, one `error: ...` line, no traceback, and leave nothing behind.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from dataset_tool import archive_name, ensure_embedded_mnist
from dnnlib.util import UserError
from training.dataset import ImageFolderDataset

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# helpers


def run_tool(*args: str):
    return CliRunner().invoke(dataset_tool.main, ["--no-progress", *map(str, args)], catch_exceptions=False)


def assert_user_error(result, *fragments: str) -> str:
    """Exit 2, exactly one 'error:' line, no traceback; returns that line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


def save(path: Path, arr_or_img, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = arr_or_img if isinstance(arr_or_img, PIL.Image.Image) else PIL.Image.fromarray(arr_or_img)
    img.save(path, **kw)
    return path


def rand(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def read_zip_dataset(path: Path) -> tuple[list[np.ndarray], dict]:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        imgs = [np.asarray(PIL.Image.open(io.BytesIO(zf.read(n)))) for n in names]
        meta = json.loads(zf.read("dataset.json"))
    return imgs, meta


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------------
# output format


def test_archive_name_layout():
    assert archive_name(0) == "00000/img00000000.png"
    assert archive_name(999) == "00000/img00000999.png"
    assert archive_name(1000) == "00001/img00001000.png"
    assert archive_name(12345678) == "12345/img12345678.png"


def test_encode_png_matches_pillow_pixels():
    for arr in (rand((5, 7)), rand((6, 3, 3), seed=1)):
        data = dataset_tool.encode_png(PIL.Image.fromarray(arr))
        img = PIL.Image.open(io.BytesIO(data))
        assert img.format == "PNG" and img.mode == ("L" if arr.ndim == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(img), arr)


def test_folder_to_zip_official_format(tmp_path):
    arrs = [rand((8, 8, 3), seed=k) for k in range(3)]
    for k, a in enumerate(arrs):
        save(tmp_path / "src" / f"{k}.png", a)
    res = run_tool("--source", tmp_path / "src", "--dest", tmp_path / "out.zip")
    assert res.exit_code == 0, res.output
    assert "wrote 3 images (8x8, 3 channels, unlabelled)" in res.stdout
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        infos = zf.infolist()
        assert sorted(i.filename for i in infos) == [archive_name(k) for k in range(3)] + ["dataset.json"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        # compress_level=0: the PNG is at least as large as the raw pixels
        assert all(i.file_size > 8 * 8 * 3 for i in infos if i.filename.endswith(".png"))
    imgs, meta = read_zip_dataset(tmp_path / "out.zip")
    assert meta == {"labels": None}
    for got, want in zip(imgs, arrs):
        np.testing.assert_array_equal(got, want)
    assert leftovers(tmp_path) == ["out.zip", "src"]  # no temporary files left


def test_folder_dest_new_and_empty(tmp_path):
    save(tmp_path / "src" / "a.png", rand((4, 4)))
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "new" / "ds").exit_code == 0
    assert (tmp_path / "new" / "ds" / "00000" / "img00000000.png").is_file()
    (tmp_path / "empty").mkdir()
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "empty").exit_code == 0
    ds = ImageFolderDataset(tmp_path / "empty")
    assert len(ds) == 1 and ds.image_shape == [1, 4, 4]


def test_recursive_folder_with_dataset_json_labels_and_unicode_names(tmp_path):
    src = tmp_path / "src"
    names = ["b/deep/x.png", "a.png", "ünï 图像.png"]
    for k, n in enumerate(names):
        save(src / n, np.full((4, 4, 3), 10 * k, np.uint8))
    (src / "dataset.json").write_text(json.dumps({"labels": [[n, k] for k, n in enumerate(names)]}), encoding="utf-8")
    res = run_tool("--source", src, "--dest", tmp_path / "out.zip")
    assert res.exit_code == 0, res.output
    imgs, meta = read_zip_dataset(tmp_path / "out.zip")
    # sorted source order: a.png, b/deep/x.png, ünï 图像.png -> values 10, 0, 20 with labels 1, 0, 2
    assert [int(i[0, 0, 0]) for i in imgs] == [10, 0, 20]
    assert meta["labels"] == [[archive_name(0), 1], [archive_name(1), 0], [archive_name(2), 2]]
    ds = ImageFolderDataset(tmp_path / "out.zip", use_labels=True)
    assert ds.label_dim == 3 and int(np.argmax(ds[2][1])) == 2


def test_unicode_names_in_zip_source(tmp_path):
    with zipfile.ZipFile(tmp_path / "src.zip", "w") as zf:
        for k, n in enumerate(["çà/ö.png", "çà/日本.png"]):
            buf = io.BytesIO()
            PIL.Image.fromarray(np.full((4, 4), k * 50, np.uint8)).save(buf, format="png")
            zf.writestr(n, buf.getvalue())
    res = run_tool("--source", tmp_path / "src.zip", "--dest", tmp_path / "out.zip")
    assert res.exit_code == 0, res.output
    imgs, _ = read_zip_dataset(tmp_path / "out.zip")
    assert [int(i[0, 0]) for i in imgs] == [0, 50]


def _class_zip(path: Path, top: str = "train/") -> dict[str, int]:
    """Zip laid out as <top><class>/<n>.png; returns the expected label of each pixel value."""
    expect = {}
    with zipfile.ZipFile(path, "w") as zf:
        for c, cls in enumerate(["dog", "cat", "bird"]):  # sorted: bird=0, cat=1, dog=2
            for j in range(2):
                value = 40 * c + j
                buf = io.BytesIO()
                PIL.Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buf, format="png")
                zf.writestr(f"{top}{cls}/{j}.png", buf.getvalue())
                expect[value] = {"bird": 0, "cat": 1, "dog": 2}[cls]
        zf.writestr(f"{top}README.txt", b"not an image")
    return expect


@pytest.mark.parametrize("top", ["train/", ""])
def test_class_folder_zip_labels_sorted_names(tmp_path, top):
    expect = _class_zip(tmp_path / "src.zip", top)
    res = run_tool("--source", tmp_path / "src.zip", "--dest", tmp_path / "out.zip")
    assert res.exit_code == 0, res.output
    assert "3 classes from folder names (bird=0, cat=1, dog=2)" in res.stderr
    assert "skipped 1 non-image file" in res.stderr
    ds = ImageFolderDataset(tmp_path / "out.zip", use_labels=True)
    assert len(ds) == 6 and ds.label_dim == 3
    for k in range(6):
        img, lab = ds[k]
        assert int(np.argmax(lab)) == expect[int(img[0, 0, 0])]
    _, meta = read_zip_dataset(tmp_path / "out.zip")
    assert meta["class_names"] == ["bird", "cat", "dog"]


def test_class_folder_in_plain_folder_and_labels_none(tmp_path):
    for cls, v in [("1", 10), ("0", 0)]:
        save(tmp_path / "src" / cls / "img.png", np.full((4, 4), v, np.uint8))
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "a.zip").exit_code == 0
    ds = ImageFolderDataset(tmp_path / "a.zip", use_labels=True)
    assert [int(np.argmax(ds[k][1])) for k in range(2)] == [0, 1]
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "b.zip", "--labels", "none").exit_code == 0
    assert not ImageFolderDataset(tmp_path / "b.zip", use_labels=True).has_labels
    # one folder only is not a class layout; asking for folders explains why
    save(tmp_path / "flat" / "only" / "a.png", np.zeros((4, 4), np.uint8))
    assert_user_error(run_tool("--source", tmp_path / "flat", "--dest", tmp_path / "c.zip", "--labels", "folders"),
                      "not laid out as <class>/<image>")
    assert_user_error(run_tool("--source", tmp_path / "flat", "--dest", tmp_path / "c.zip", "--labels", "json"),
                      "no 'dataset.json'")


def test_reconverting_a_dataset_keeps_labels_and_official_layout_is_not_classes(tmp_path):
    _class_zip(tmp_path / "src.zip")
    assert run_tool("--source", tmp_path / "src.zip", "--dest", tmp_path / "a.zip").exit_code == 0
    assert run_tool("--source", tmp_path / "a.zip", "--dest", tmp_path / "b").exit_code == 0
    a, meta_a = read_zip_dataset(tmp_path / "a.zip")
    meta_b = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert meta_b["labels"] == meta_a["labels"]
    (tmp_path / "b" / "dataset.json").unlink()  # NNNNN/ folders alone are not class folders
    for k in range(1000, 1002):  # a second NNNNN folder
        save(tmp_path / "b" / archive_name(k), a[0])
    assert run_tool("--source", tmp_path / "b", "--dest", tmp_path / "c.zip").exit_code == 0
    assert read_zip_dataset(tmp_path / "c.zip")[1] == {"labels": None}


# ------------------------------------------------------------------------------------------------
# transforms and options


def test_box_and_lanczos_resize(tmp_path):
    arr = rand((8, 8, 3))
    save(tmp_path / "src" / "a.png", arr)
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "box.zip", "--resolution", 4).exit_code == 0
    (box,), _ = read_zip_dataset(tmp_path / "box.zip")
    block_means = arr.reshape(4, 2, 4, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(box.astype(np.float64) - block_means).max() <= 1.0  # Pillow rounds in fixed point
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "lz.zip", "--resolution", 4,
                    "--resize-filter", "lanczos").exit_code == 0
    (lz,), _ = read_zip_dataset(tmp_path / "lz.zip")
    expect = np.asarray(PIL.Image.fromarray(arr).resize((4, 4), PIL.Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(lz, expect)
    assert not np.array_equal(lz, box)


def test_crop_center_crop_and_official_width_height(tmp_path):
    arr = rand((12, 16, 3))  # H=12, W=16
    save(tmp_path / "src" / "a.png", arr)
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "c.zip", "--crop", "3,2,8,8").exit_code == 0
    (got,), _ = read_zip_dataset(tmp_path / "c.zip")
    np.testing.assert_array_equal(got, arr[2:10, 3:11])
    # center-crop 12x12 from the middle, then box-resize to 4 (3x3 blocks)
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "cc.zip", "--transform", "center-crop",
                    "--width", 4, "--height", 4).exit_code == 0
    (got,), _ = read_zip_dataset(tmp_path / "cc.zip")
    mid = arr[:, 2:14].astype(np.float64).reshape(4, 3, 4, 3, 3).mean(axis=(1, 3))
    assert np.abs(got - mid).max() <= 1.0  # Pillow rounds in fixed point
    assert_user_error(run_tool("--source", tmp_path / "src", "--dest", tmp_path / "x.zip", "--width", 8, "--height", 4),
                      "must be square")


def test_center_crop_wide_letterboxes(tmp_path):
    save(tmp_path / "src" / "wide.png", np.full((8, 16, 3), 200, np.uint8))
    save(tmp_path / "src" / "tiny.png", np.full((2, 4, 3), 200, np.uint8))  # too small: dropped
    res = run_tool("--source", tmp_path / "src", "--dest", tmp_path / "w.zip", "--transform", "center-crop-wide",
                   "--width", 8, "--height", 4)
    assert res.exit_code == 0, res.output
    assert "dropped 1 image(s) too small" in res.stderr
    (got,), _ = read_zip_dataset(tmp_path / "w.zip")
    assert got.shape == (8, 8, 3)
    assert (got[:2] == 0).all() and (got[6:] == 0).all() and (got[2:6] == 200).all()


def test_max_images_and_forced_channels(tmp_path):
    for k in range(5):
        save(tmp_path / "src" / f"{k}.png", np.full((4, 4), 30 * k, np.uint8))
    res = run_tool("--source", tmp_path / "src", "--dest", tmp_path / "o.zip", "--max-images", 2, "--channels", 3)
    assert res.exit_code == 0, res.output
    imgs, _ = read_zip_dataset(tmp_path / "o.zip")
    assert len(imgs) == 2 and imgs[1].shape == (4, 4, 3) and (imgs[1] == 30).all()


def test_mode_conversions_rgba_palette_16bit_la(tmp_path):
    rgba = rand((4, 4, 4))
    save(tmp_path / "rgba" / "a.png", rgba)
    res = run_tool("--source", tmp_path / "rgba", "--dest", tmp_path / "rgba.zip")
    assert res.exit_code == 0 and "dropped the alpha channel of 1 image" in res.stderr
    (got,), _ = read_zip_dataset(tmp_path / "rgba.zip")
    np.testing.assert_array_equal(got, rgba[:, :, :3])

    pal = PIL.Image.fromarray(rand((4, 4, 3), seed=3)).quantize(colors=5)
    save(tmp_path / "pal" / "p.png", pal)
    assert run_tool("--source", tmp_path / "pal", "--dest", tmp_path / "pal.zip").exit_code == 0
    (got,), _ = read_zip_dataset(tmp_path / "pal.zip")
    np.testing.assert_array_equal(got, np.asarray(pal.convert("RGB")))
    assert got.shape == (4, 4, 3)

    sixteen = np.array([[0, 257, 0x1234, 65535]] * 4, dtype=np.uint16)
    save(tmp_path / "i16" / "s.png", PIL.Image.fromarray(sixteen))
    res = run_tool("--source", tmp_path / "i16", "--dest", tmp_path / "i16.zip")
    assert res.exit_code == 0 and "16-bit" in res.stderr
    (got,), _ = read_zip_dataset(tmp_path / "i16.zip")
    assert got.ndim == 2 and got[0].tolist() == [0, 1, round(0x1234 / 257), 255]

    gray = rand((4, 4), seed=5)
    img = PIL.Image.merge("LA", [PIL.Image.fromarray(gray), PIL.Image.fromarray(rand((4, 4), seed=6))])
    save(tmp_path / "la" / "l.png", img)
    res = run_tool("--source", tmp_path / "la", "--dest", tmp_path / "la.zip")
    assert res.exit_code == 0 and "alpha" in res.stderr
    (got,), _ = read_zip_dataset(tmp_path / "la.zip")
    np.testing.assert_array_equal(got, gray)


def test_worker_processes_give_identical_output_and_clean_errors(tmp_path):
    for k in range(300):
        save(tmp_path / "src" / f"{k:03d}.png", rand((4, 4, 3), seed=k))
    assert run_tool("--source", tmp_path / "src", "--dest", tmp_path / "one.zip").exit_code == 0
    res = run_tool("--source", tmp_path / "src", "--dest", tmp_path / "two.zip", "--workers", 2)
    assert res.exit_code == 0, res.output
    a, meta_a = read_zip_dataset(tmp_path / "one.zip")
    b, meta_b = read_zip_dataset(tmp_path / "two.zip")
    assert len(a) == len(b) == 300 and meta_a == meta_b
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    (tmp_path / "src" / "290.png").write_bytes(b"broken")
    assert_user_error(run_tool("--source", tmp_path / "src", "--dest", tmp_path / "three.zip", "--workers", 2),
                      "290.png", "cannot decode")
    assert not (tmp_path / "three.zip").exists()


# ------------------------------------------------------------------------------------------------
# MNIST IDX and CIFAR-10 tarball readers (synthetic files in the real formats)


def _write_idx(path: Path, magic: int, arr: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_mnist_idx_source_pads_and_labels(tmp_path):
    imgs = rand((5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, labels)
    res = run_tool("--source", tmp_path / "train-images-idx3-ubyte.gz", "--dest", tmp_path / "m.zip")
    assert res.exit_code == 0, res.output
    ds = ImageFolderDataset(tmp_path / "m.zip", use_labels=True)
    assert len(ds) == 5 and ds.image_shape == [1, 32, 32] and ds.label_dim == 6
    for k in range(5):
        img, lab = ds[k]
        np.testing.assert_array_equal(img[0, 2:30, 2:30], imgs[k])
        assert img[0, :2].sum() == 0 and img[0, :, 30:].sum() == 0
        assert int(np.argmax(lab)) == labels[k]
    res = run_tool("--source", tmp_path / "train-images-idx3-ubyte.gz", "--dest", tmp_path / "n.zip", "--no-mnist-pad",
                   "--resolution", 16)
    assert res.exit_code == 0 and ImageFolderDataset(tmp_path / "n.zip").resolution == 16


def test_mnist_bad_files(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", 2051, rand((3, 28, 28)))
    src = tmp_path / "train-images-idx3-ubyte.gz"
    assert_user_error(run_tool("--source", src, "--dest", tmp_path / "m.zip"), "labels file", "not found")
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2049, np.zeros(2, np.uint8))
    assert_user_error(run_tool("--source", src, "--dest", tmp_path / "m.zip"), "3 images", "2 labels")
    # truncated images: header promises 3 images, data holds fewer bytes
    raw = gzip.decompress(src.read_bytes())
    src.write_bytes(gzip.compress(raw[:-100]))
    assert_user_error(run_tool("--source", src, "--dest", tmp_path / "m.zip"), "truncated")
    # checksum file beside it that disagrees
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  train-images-idx3-ubyte.gz\n")
    assert_user_error(run_tool("--source", src, "--dest", tmp_path / "m.zip"), "checksum mismatch")
    assert not (tmp_path / "m.zip").exists()


def _cifar_tarball(path: Path, per_batch: int = 2) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    all_imgs, all_labels = [], []
    with tarfile.open(path, "w:gz") as tar:
        for b in range(1, 6):
            chw = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            blob = pickle.dumps({"batch_label": f"batch {b}", "labels": labels, "data": chw.reshape(per_batch, -1)},
                                protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{b}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            all_imgs.append(chw.transpose(0, 2, 3, 1))
            all_labels += labels
    return np.concatenate(all_imgs), all_labels


def test_cifar10_tarball_source(tmp_path):
    imgs, labels = _cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    res = run_tool("--source", tmp_path / "cifar-10-python.tar.gz", "--dest", tmp_path / "c.zip")
    assert res.exit_code == 0, res.output
    ds = ImageFolderDataset(tmp_path / "c.zip", use_labels=True)
    assert len(ds) == 10 and ds.image_shape == [3, 32, 32]
    for k in range(10):
        img, lab = ds[k]
        np.testing.assert_array_equal(img.transpose(1, 2, 0), imgs[k])
        assert int(np.argmax(lab)) == labels[k]


def test_cifar10_tarball_with_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    blob = pickle.dumps(Evil(), protocol=2)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    assert_user_error(run_tool("--source", tmp_path / "cifar-10-python.tar.gz", "--dest", tmp_path / "c.zip"),
                      "refusing to load global")
    assert not (tmp_path / "pwned").exists()


def test_ensure_embedded_mnist_refuses_damaged_copy(tmp_path, monkeypatch):
    bad = tmp_path / "mnist"
    shutil.copytree(REPO_ROOT / "data" / "mnist", bad)
    blob = bytearray((bad / "train-labels-idx1-ubyte.gz").read_bytes())
    blob[-12] ^= 0xFF
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(bytes(blob))
    monkeypatch.setattr(dataset_tool, "EMBEDDED_MNIST_DIR", bad)
    with pytest.raises(UserError, match="checksum mismatch.*train-labels"):
        ensure_embedded_mnist(tmp_path / "m.zip")
    assert not (tmp_path / "m.zip").exists()
    # an existing file that is not the MNIST dataset is refused, not overwritten
    (tmp_path / "other.zip").write_bytes(b"keep me")
    with pytest.raises(UserError, match="delete it"):
        ensure_embedded_mnist(tmp_path / "other.zip")
    assert (tmp_path / "other.zip").read_bytes() == b"keep me"


# ------------------------------------------------------------------------------------------------
# bad input: one error line, exit 2, nothing lost


@pytest.fixture
def good_src(tmp_path) -> Path:
    for k in range(3):
        save(tmp_path / "src" / f"{k}.png", rand((8, 8, 3), seed=k))
    return tmp_path / "src"


def test_corrupt_truncated_and_empty_images(tmp_path, good_src):
    valid = (good_src / "0.png").read_bytes()
    cases = {"z_corrupt.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "z_trunc.png": valid[: len(valid) // 2],
             "z_empty.png": b"", "z_текст.jpg": b"plain text, not a jpeg"}
    for name, data in cases.items():
        bad = good_src / name
        bad.write_bytes(data)
        line = assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "out.zip"), name)
        assert ("empty" in line) if not data else ("cannot decode" in line)
        bad.unlink()
        # the failure came after 3 good images were converted: no partial output, no temp files
        assert leftovers(tmp_path) == ["src"]


def test_non_image_files_are_skipped_and_counted(tmp_path, good_src):
    (good_src / "notes.txt").write_text("hello")
    (good_src / ".DS_Store").write_bytes(b"\0\0")
    res = run_tool("--source", good_src, "--dest", tmp_path / "out.zip")
    assert res.exit_code == 0, res.output
    assert "skipped 2 non-image file(s)" in res.stderr
    assert len(ImageFolderDataset(tmp_path / "out.zip")) == 3


def test_mixed_sizes_and_channels_are_refused_naming_the_file(tmp_path, good_src):
    save(good_src / "9_big.png", rand((16, 16, 3)))
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip"), "9_big.png", "16x16", "0.png")
    res = run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--resolution", 8, "--transform", "center-crop")
    assert res.exit_code == 0, res.output
    (good_src / "9_big.png").unlink()
    save(good_src / "9_gray.png", rand((8, 8)))
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "p.zip"), "9_gray.png", "--channels")
    assert run_tool("--source", good_src, "--dest", tmp_path / "p.zip", "--channels", 3).exit_code == 0
    assert ImageFolderDataset(tmp_path / "p.zip").num_channels == 3


def test_resolution_not_power_of_two(tmp_path, good_src):
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--resolution", 48), "power of two")
    for k in range(3):
        (good_src / f"{k}.png").unlink()
    save(good_src / "a.png", rand((12, 12)))
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip"), "12x12", "power-of-two")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--crop", "0,0,9,9"), "9x9")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--crop", "8,8,8,8"), "does not fit")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--crop", "1,2,3"), "X,Y,W,H")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip", "--transform", "center-crop"),
                      "needs --resolution")
    assert not (tmp_path / "o.zip").exists()


def test_zip_slip_entries_are_refused_and_nothing_written_outside(tmp_path):
    (tmp_path / "work").mkdir()
    buf = io.BytesIO()
    PIL.Image.fromarray(rand((4, 4))).save(buf, format="png")
    for evil in ["../evil.png", "/tmp/abs_evil.png", "ok/../../evil2.png"]:
        src = tmp_path / "work" / "src.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("good.png", buf.getvalue())
            zf.writestr(zipfile.ZipInfo(evil), buf.getvalue())
        assert_user_error(run_tool("--source", src, "--dest", tmp_path / "work" / "out"), "unsafe entry", evil)
        src.unlink()
        assert leftovers(tmp_path / "work") == []
    assert leftovers(tmp_path) == ["work"]
    assert not Path("/tmp/abs_evil.png").exists()


def test_destination_with_data_is_refused_and_untouched(tmp_path, good_src):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "precious.txt").write_text("keep")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "full"), "not empty")
    assert leftovers(tmp_path / "full") == ["precious.txt"]
    assert (tmp_path / "full" / "precious.txt").read_text() == "keep"
    (tmp_path / "old.zip").write_bytes(b"old bytes")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "old.zip"), "already exists")
    assert (tmp_path / "old.zip").read_bytes() == b"old bytes"
    (tmp_path / "afile").write_text("x")
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "afile"), "not a folder")


def test_empty_and_missing_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(run_tool("--source", tmp_path / "empty", "--dest", tmp_path / "o.zip"), "no image files")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    assert_user_error(run_tool("--source", tmp_path / "docs", "--dest", tmp_path / "o.zip"), "no image files", "a.txt")
    with zipfile.ZipFile(tmp_path / "e.zip", "w"):
        pass
    assert_user_error(run_tool("--source", tmp_path / "e.zip", "--dest", tmp_path / "o.zip"), "no image files")
    assert_user_error(run_tool("--source", tmp_path / "nope", "--dest", tmp_path / "o.zip"), "does not exist")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    assert_user_error(run_tool("--source", tmp_path / "broken.zip", "--dest", tmp_path / "o.zip"), "cannot open")
    (tmp_path / "x.bin").write_bytes(b"1")
    assert_user_error(run_tool("--source", tmp_path / "x.bin", "--dest", tmp_path / "o.zip"), "don't know how")
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.parametrize(
    "raw, fragment",
    [("{broken", "not valid JSON"), ('{"labels": {"0.png": 1}}', "not a list"), ('[1, 2]', "no 'labels' key"),
     ('{"labels": [["0.png", 1.5]]}', "label of '0.png'")],
)
def test_malformed_dataset_json_in_source(tmp_path, good_src, raw, fragment):
    (good_src / "dataset.json").write_text(raw)
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip"), "dataset.json", fragment)
    assert not (tmp_path / "o.zip").exists()


def test_labels_naming_missing_files_and_partial_labels(tmp_path, good_src):
    (good_src / "dataset.json").write_text(json.dumps({"labels": [["0.png", 0], ["gone.png", 1]]}))
    assert_user_error(run_tool("--source", good_src, "--dest", tmp_path / "o.zip"), "gone.png")
    # labels for only some images: the official rule writes {"labels": null}, we also warn
    (good_src / "dataset.json").write_text(json.dumps({"labels": [["0.png", 0], ["1.png", 1]]}))
    res = run_tool("--source", good_src, "--dest", tmp_path / "o.zip")
    assert res.exit_code == 0 and "1 of 3 images have no label" in res.stderr
    assert read_zip_dataset(tmp_path / "o.zip")[1] == {"labels": None}


def test_real_process_prints_one_error_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "dataset_tool.py"), "--source", str(tmp_path / "missing"),
                           "--dest", str(tmp_path / "o.zip")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: --source '{tmp_path / 'missing'}' does not exist"]


# ------------------------------------------------------------------------------------------------
# What it must show: the real datasets


@pytest.fixture(scope="session")
def mnist32(tmp_path_factory) -> Path:
    """The 60k embedded MNIST, built once per session by ensure_embedded_mnist."""
    return ensure_embedded_mnist(tmp_path_factory.mktemp("mnist") / "mnist32.zip")


def test_embedded_mnist_60k_with_right_labels(mnist32):
    raw = gzip.decompress((REPO_ROOT / "data" / "mnist" / "train-images-idx3-ubyte.gz").read_bytes())
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    raw = gzip.decompress((REPO_ROOT / "data" / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes())
    labels = np.frombuffer(raw, np.uint8, offset=8)
    ds = ImageFolderDataset(mnist32, use_labels=True)
    assert len(ds) == 60000 and ds.image_shape == [1, 32, 32] and ds.label_dim == 10 and ds.name == "mnist32"
    got = np.array([int(np.argmax(ds.get_label(k))) for k in range(len(ds))])
    np.testing.assert_array_equal(got, labels)
    for k in np.random.default_rng(0).choice(60000, 300, replace=False).tolist() + [0, 59999]:
        img, lab = ds[k]
        np.testing.assert_array_equal(img[0, 2:30, 2:30], images[k])
        assert img[0, :2].sum() == 0 and img[0, 30:].sum() == 0 and img[0, :, :2].sum() == 0
        assert int(np.argmax(lab)) == labels[k]
    assert ensure_embedded_mnist(mnist32) == mnist32  # reused, not rebuilt


def test_mnist_cli_from_repo_idx(tmp_path, mnist32):
    src = REPO_ROOT / "data" / "mnist" / "train-images-idx3-ubyte.gz"
    res = run_tool("--source", src, "--dest", tmp_path / "m.zip", "--max-images", 50)
    assert res.exit_code == 0, res.output
    a = ImageFolderDataset(tmp_path / "m.zip", use_labels=True)
    b = ImageFolderDataset(mnist32, use_labels=True)
    for k in range(50):
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1][:a.label_dim], b[k][1][:a.label_dim])


def _celeba(shared_data: Path) -> Path:
    path = shared_data / "celeba" / "celeba_aligned_first10k_89x109.zip"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_celeba_crop_64_first_images(tmp_path, shared_data):
    src = _celeba(shared_data)
    res = run_tool("--source", src, "--dest", tmp_path / "c.zip", "--crop", "17,27,54,54", "--resolution", 64,
                   "--max-images", 100)
    assert res.exit_code == 0, res.output
    ds = ImageFolderDataset(tmp_path / "c.zip")
    assert len(ds) == 100 and ds.image_shape == [3, 64, 64] and not ds.has_labels
    with zipfile.ZipFile(src) as zf:
        face = PIL.Image.open(io.BytesIO(zf.read("000042.jpg"))).convert("RGB")
    want = np.asarray(face.crop((17, 27, 71, 81)).resize((64, 64), PIL.Image.Resampling.BOX))
    np.testing.assert_array_equal(ds[41][0].transpose(1, 2, 0), want)


@pytest.mark.slow
def test_celeba_crop_64_all_10000(tmp_path, shared_data):
    src = _celeba(shared_data)
    res = run_tool("--source", src, "--dest", tmp_path / "c.zip", "--crop", "17,27,54,54", "--resolution", 64,
                   "--workers", 2)
    assert res.exit_code == 0, res.output
    assert "wrote 10000 images (64x64, 3 channels, unlabelled)" in res.stdout
    ds = ImageFolderDataset(tmp_path / "c.zip", resolution=64)
    assert len(ds) == 10000 and ds.num_channels == 3
    assert ds[9999][0].shape == (3, 64, 64)


def _cifar(shared_data: Path) -> Path:
    path = shared_data / "cifar10" / "cifar10_train_jpg_q75.zip"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_cifar10_class_zip_first_images(tmp_path, shared_data):
    src = _cifar(shared_data)
    res = run_tool("--source", src, "--dest", tmp_path / "c.zip", "--max-images", 100)
    assert res.exit_code == 0, res.output
    ds = ImageFolderDataset(tmp_path / "c.zip", use_labels=True)
    assert len(ds) == 100 and ds.image_shape == [3, 32, 32]
    with zipfile.ZipFile(src) as zf:
        first = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[0]
        want = np.asarray(PIL.Image.open(io.BytesIO(zf.read(first))).convert("RGB"))
    assert first.startswith("train/airplane/")
    np.testing.assert_array_equal(ds[0][0].transpose(1, 2, 0), want)
    assert int(np.argmax(ds[0][1])) == 0


@pytest.mark.slow
def test_cifar10_class_zip_all_50000(tmp_path, shared_data):
    src = _cifar(shared_data)
    res = run_tool("--source", src, "--dest", tmp_path / "c.zip", "--workers", 2)
    assert res.exit_code == 0, res.output
    assert "wrote 50000 images (32x32, 3 channels, labelled)" in res.stdout
    _, meta = read_zip_dataset_meta(tmp_path / "c.zip")
    assert meta["class_names"] == CIFAR_CLASSES
    ds = ImageFolderDataset(tmp_path / "c.zip", use_labels=True)
    assert len(ds) == 50000 and ds.label_dim == 10
    counts = np.bincount([int(np.argmax(ds.get_label(k))) for k in range(len(ds))], minlength=10)
    assert counts.tolist() == [5000] * 10
    # sorted order: the last image comes from train/truck/
    assert int(np.argmax(ds[49999][1])) == CIFAR_CLASSES.index("truck")


def read_zip_dataset_meta(path: Path) -> tuple[int, dict]:
    with zipfile.ZipFile(path) as zf:
        return len(zf.namelist()), json.loads(zf.read("dataset.json"))

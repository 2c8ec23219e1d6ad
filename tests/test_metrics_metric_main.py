"""The metric registry, calc_metric end to end (with a small pixel detector) and report_metric."""

from __future__ import annotations

import json

import pytest
import torch

from dnnlib.util import UserError
from metrics import metric_main
from test_metrics_pipeline import PixelDetector, TinyG, make_dataset


class PixelDetectorWithHead(PixelDetector):
    """Pixel features plus 'class probabilities' from a fixed random projection (for IS)."""

    has_head = True
    identity = "pixels-head-v1"

    def __init__(self):
        super().__init__()
        self.proj = torch.randn(48, 10, generator=torch.Generator().manual_seed(0)) / 50

    def features_and_probabilities(self, images):
        f = self.features(images)
        return f, torch.softmax(f.double() @ self.proj.double(), dim=1)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RENYI_GAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_names_and_patterns():
    for name in ["fid50k_full", "fid50k", "kid50k_full", "kid50k", "pr50k3_full", "pr50k3", "is50k"]:
        assert metric_main.is_valid_metric(name)
        assert name in metric_main.list_valid_metrics()
    for name in ["fid2k_full", "fid10k", "fid500_full", "kid1k_full", "pr1k3_full", "pr2k5", "is1k", "is10"]:
        assert metric_main.is_valid_metric(name), name
    for name in ["fid", "fid1_full", "fid2k_ful", "kid2kfull", "pr1k", "is5", "ppl2_wend", "FID50k", "", None]:
        assert not metric_main.is_valid_metric(name), name
    with pytest.raises(UserError, match="unknown metric 'fidd1k'"):
        metric_main.calc_metric("fidd1k")


def test_fid_kid_pr_is_end_to_end(tmp_path, cache_dir):
    kwargs = make_dataset(tmp_path / "ds", n=24, res=8, labels=True)
    G = TinyG(c_dim=3)
    det = PixelDetectorWithHead()
    common = dict(G=G, dataset_kwargs=kwargs, progress=False, detector_obj=det, batch_size=8)
    fid = metric_main.calc_metric("fid20_full", **common)
    assert set(fid) >= {"results", "metric", "total_time", "total_time_str", "num_gpus", "detector"}
    assert fid.metric == "fid20_full" and fid.num_gpus == 1 and fid.detector == "pixels-head-v1"
    assert fid.results.fid20_full > 0
    # Same seed, same result (and the real statistics now come from the cache).
    assert metric_main.calc_metric("fid20_full", **common).results.fid20_full == fid.results.fid20_full
    kid = metric_main.calc_metric("kid20_full", **common)
    assert kid.results.kid20_full > 0
    pr = metric_main.calc_metric("pr1k3_full", **dict(common, G=TinyG(c_dim=3)))
    assert set(pr.results) == {"pr1k3_full_precision", "pr1k3_full_recall"}
    assert pr.pr_features == "pixels"
    assert all(0.0 <= v <= 1.0 for v in pr.results.values())
    is_ = metric_main.calc_metric("is20", **common)
    assert set(is_.results) == {"is20_mean", "is20_std"} and is_.results.is20_mean >= 1.0


def test_full_metrics_ignore_mirroring_and_legacy_ones_keep_it(tmp_path, cache_dir):
    kwargs = make_dataset(tmp_path / "ds", n=10, res=8, labels=False)
    det = PixelDetector()
    common = dict(G=TinyG(), progress=False, detector_obj=det, batch_size=8)
    full = metric_main.calc_metric("fid10_full", dataset_kwargs=kwargs, **common).results.fid10_full
    full_flip = metric_main.calc_metric("fid10_full", dataset_kwargs=dict(kwargs, xflip=True), **common).results.fid10_full
    assert full == full_flip
    legacy = metric_main.calc_metric("fid10", dataset_kwargs=kwargs, **common).results.fid10
    legacy_flip = metric_main.calc_metric("fid20", dataset_kwargs=dict(kwargs, xflip=True), **common).results.fid20
    assert legacy == full  # 10 real items either way, no mirroring
    assert legacy_flip != legacy  # 20 real items: 10 originals + 10 mirrored copies


def test_fid_of_a_generator_against_its_own_samples_is_small(tmp_path, cache_dir):
    """Real data = 400 samples of G; FID of G (other seeds) against them is far below that of another G."""
    import PIL.Image

    from metrics.pipeline import to_uint8

    G = TinyG()
    folder = tmp_path / "real"
    (folder / "00000").mkdir(parents=True)
    with torch.no_grad():
        imgs = to_uint8(G(z=torch.randn([400, G.z_dim], generator=torch.Generator().manual_seed(123)), c=None))
    for i, img in enumerate(imgs):
        PIL.Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / "00000" / f"img{i:08d}.png")
    kwargs = dict(class_name="training.dataset.ImageFolderDataset", path=str(folder))
    common = dict(dataset_kwargs=kwargs, progress=False, detector_obj=PixelDetector(), batch_size=50)
    same = metric_main.calc_metric("fid400_full", G=G, **common).results.fid400_full
    other = metric_main.calc_metric("fid400_full", G=TinyG(), **common).results.fid400_full
    assert 0 <= same < 0.1 * other


def test_report_metric_appends_json_lines(tmp_path, capsys):
    result = dict(results={"fid2k_full": 12.5}, metric="fid2k_full", total_time=3.0, total_time_str="3s", num_gpus=1)
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=str(tmp_path / "network-snapshot-000010.pt"))
    metric_main.report_metric(dict(result, results={"fid2k_full": 11.0}), run_dir=str(tmp_path),
                              snapshot_pkl="network-snapshot-000020.pt")
    lines = (tmp_path / "metric-fid2k_full.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["snapshot_pkl"] == "network-snapshot-000010.pt" and first["results"]["fid2k_full"] == 12.5
    assert second["results"]["fid2k_full"] == 11.0 and second["timestamp"] >= first["timestamp"]
    assert json.loads(capsys.readouterr().out.splitlines()[0])["metric"] == "fid2k_full"
    # No run dir: printed only.
    metric_main.report_metric(result, run_dir=None, snapshot_pkl=None)
    assert len((tmp_path / "metric-fid2k_full.jsonl").read_text().splitlines()) == 2

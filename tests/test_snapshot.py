"""Snapshots: plain data that `torch.load(weights_only=True)` reads; foreign files are refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from dnnlib.util import UserError
from training.networks_dcgan import Discriminator, Generator
from training.snapshot import load_snapshot, read_snapshot, save_snapshot


def _nets():
    torch.manual_seed(0)
    G = Generator(z_dim=8, img_resolution=16, img_channels=1, width=4)
    D = Discriminator(img_resolution=16, img_channels=1, width=4)
    G_ema = Generator(z_dim=8, img_resolution=16, img_channels=1, width=4)
    return G, D, G_ema


def test_roundtrip_is_weights_only_and_rebuilds_networks(tmp_path):
    G, D, G_ema = _nets()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(2, 8), None).sum().backward()
    opt.step()
    path = tmp_path / "network-snapshot-000001.pt"
    save_snapshot(path, G=G, D=D, G_ema=G_ema, augment_pipe=None, G_opt=opt.state_dict(),
                  progress=dict(cur_nimg=1234, cur_tick=3, batch_idx=7), training_set_kwargs=dict(path="x.zip", xflip=False))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind
    raw = torch.load(path, weights_only=True)  # must not need any class from the file
    assert raw["format"] == "renyi-gan-snapshot" and raw["G"]["class_name"] == "training.networks_dcgan.Generator"
    snap = load_snapshot(path)
    assert snap.cur_nimg == 1234 and snap.training_set_kwargs == dict(path="x.zip", xflip=False)
    for mine, theirs in ((G, snap.G), (D, snap.D), (G_ema, snap.G_ema)):
        assert not theirs.training and not any(p.requires_grad for p in theirs.parameters())
        for k, v in mine.state_dict().items():
            torch.testing.assert_close(theirs.state_dict()[k], v)
    opt2 = torch.optim.Adam(Generator(z_dim=8, img_resolution=16, img_channels=1, width=4).parameters(), lr=1e-3)
    opt2.load_state_dict(raw["G_opt"])
    assert int(opt2.state_dict()["state"][0]["step"]) == 1


def test_G_ema_same_as_G_is_stored_once(tmp_path):
    G, D, _ = _nets()
    path = tmp_path / "s.pt"
    save_snapshot(path, G=G, D=D, G_ema="same_as_G")
    assert read_snapshot(path)["G_ema"]["state_dict"] is None
    snap = load_snapshot(path)
    torch.testing.assert_close(snap.G_ema.fc.weight, G.fc.weight)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_files_are_refused(tmp_path, capsys):
    bad_pickle = tmp_path / "evil.pkl"
    bad_pickle.write_bytes(pickle.dumps({"G": _Evil()}))
    random_bytes = tmp_path / "noise.pt"
    random_bytes.write_bytes(bytes(range(256)) * 4)
    plain_state = tmp_path / "state.pt"
    torch.save({"weight": torch.zeros(3)}, plain_state)
    torch_pickled_module = tmp_path / "module.pt"
    torch.save({"format": "renyi-gan-snapshot", "version": 1, "G": torch.nn.Linear(2, 2)}, torch_pickled_module)
    for path in (bad_pickle, random_bytes, plain_state, torch_pickled_module, tmp_path / "missing.pt"):
        with pytest.raises(UserError):
            load_snapshot(path)
    assert "pwned" not in capsys.readouterr().out


def test_class_names_outside_the_project_are_refused(tmp_path):
    G, D, _ = _nets()
    path = tmp_path / "s.pt"
    save_snapshot(path, G=G, D=D, G_ema=G)
    data = torch.load(path, weights_only=True)
    data["G"]["class_name"] = "os.system"
    torch.save(data, path)
    with pytest.raises(UserError, match="refusing"):
        load_snapshot(path)


def test_resume_differences_name_structural_settings_only():
    from training import configs
    from training.snapshot import resume_differences, to_plain

    common = dict(c_dim=0, img_resolution=32, img_channels=3)
    cuda = configs.build_config("cifar", resolution=32, img_channels=3, device_type="cuda")
    cpu = configs.build_config("cifar", resolution=32, img_channels=3, device_type="cpu")
    narrow = configs.build_config("cifar", resolution=32, img_channels=3, device_type="cpu", cbase=4096, cmax=128)

    def snap(c):  # what a snapshot records: the class and the full constructor kwargs
        rec = lambda kw: {"class_name": kw["class_name"],  # noqa: E731
                          "init_kwargs": to_plain({**{k: v for k, v in kw.items() if k != "class_name"}, **common})}
        return {"G": rec(c.G_kwargs), "D": rec(c.D_kwargs)}

    assert cuda.G_kwargs != cpu.G_kwargs  # fp16 layers / clamping on CUDA only ...
    assert resume_differences(snap(cuda), cpu.G_kwargs, cpu.D_kwargs, common) == []  # ... same weights: resumable
    problems = resume_differences(snap(cpu), narrow.G_kwargs, narrow.D_kwargs, common)
    assert any(p.startswith("G ") and "channel_base" in p for p in problems)
    assert any(p.startswith("D ") and "channel_max" in p for p in problems)
    other_res = dict(common, img_resolution=64)
    assert any("img_resolution: snapshot 32, this run 64" in p for p in resume_differences(snap(cpu), cpu.G_kwargs, cpu.D_kwargs, other_res))

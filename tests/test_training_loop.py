"""End-to-end checks of training.training_loop on tiny 16 px runs over real MNIST digits."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers_training import make_tiny_mnist, tiny_options
from training import training_loop
from training.snapshot import load_snapshot, read_snapshot


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "mnist16.zip", n=64)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions are fastest (and least disturbed by other jobs) on one thread.
    torch.set_num_threads(1)
    yield


def _stats(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss,gen_kwargs", [("ns", {}), ("renyi", {"alpha": 3.0, "l1": False})])
def test_tiny_run_writes_run_folder(tmp_path, tiny_data, loss, gen_kwargs):
    opts = tiny_options(tiny_data, tmp_path, loss=loss, gen_kwargs=gen_kwargs, steps=3, steps_per_tick=2)

    res = training_loop.training_loop(**opts)

    assert res.cur_nimg == 24 and res.batch_idx == 3 and res.cur_tick == 2
    for name in ("reals.png", "fakes_init.png", "fakes000000.png", "losses.png", "network-snapshot-000000.pt"):
        assert (tmp_path / name).is_file(), name
    stats = _stats(tmp_path)
    assert [round(s["Progress/kimg"]["mean"], 3) for s in stats] == [0.008, 0.024]
    assert all(math.isfinite(s["Loss/G/loss"]["mean"]) and math.isfinite(s["Loss/D/loss"]["mean"]) for s in stats)
    # The D loss at initialisation (logits ~ 0) is 2 log 2.
    assert abs(stats[0]["Loss/D/loss"]["mean"] - 2 * math.log(2)) < 0.05
    if loss == "renyi":
        assert stats[0]["Progress/alpha"]["mean"] == 3.0
        # Rényi loss at D = 1/2 is -log 2 for every alpha.
        assert abs(stats[0]["Loss/G/loss"]["mean"] + math.log(2)) < 0.05
    else:
        assert abs(stats[0]["Loss/G/loss"]["mean"] - math.log(2)) < 0.05
    snap = load_snapshot(res.last_snapshot)
    assert snap.cur_nimg == 24
    for k, v in res.G.state_dict().items():
        torch.testing.assert_close(snap.G.state_dict()[k], v)
    # Training moved G away from its initialisation (same seed -> same initial weights).
    torch.manual_seed(0)
    fresh = type(res.G)(**res.G.init_kwargs)
    assert _max_diff(fresh, res.G.cpu()) > 1e-5


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].numel())


def test_resume_continues_exactly(tmp_path, tiny_data):
    """2N steps == N steps + resume + N steps: EMA, lazy R1, ADA, alpha schedule and dropout included."""
    extra = dict(deterministic=True, alpha_schedule="triangle:1.5:3:kimg=0.016", ema_kimg=0.01, D_reg_interval=2,
                 augment_kwargs=dict(class_name="training.augment.AugmentPipe", xflip=1, rotate90=1, xint=1),
                 augment_p=0.2, ada_target=0.0, ada_interval=2, ada_kimg=0.1)

    def run(name, steps, resume=None):
        rd = tmp_path / name
        rd.mkdir()
        opts = tiny_options(tiny_data, rd, loss="renyi", gen_kwargs={"alpha": 3.0, "l1": True}, steps=steps,
                            steps_per_tick=2, snap=100, **extra)
        opts.loss_kwargs.r1_gamma = 1.0
        return training_loop.training_loop(resume_pkl=resume, **opts)

    a = run("A", 4)
    b = run("B", 2)
    c = run("C", 4, resume=b.last_snapshot)

    assert c.cur_nimg == a.cur_nimg == 32 and c.batch_idx == 4
    assert _max_diff(a.G, c.G) <= 1e-6
    assert _max_diff(a.D, c.D) <= 1e-6
    assert _max_diff(a.G_ema, c.G_ema) <= 1e-6
    sa, sc = read_snapshot(a.last_snapshot), read_snapshot(c.last_snapshot)
    assert sa["augment_p"] == pytest.approx(sc["augment_p"], abs=1e-9) and sa["augment_p"] > 0.2  # ADA moved p
    for i in sa["G_opt"]["state"]:
        torch.testing.assert_close(sa["G_opt"]["state"][i]["exp_avg_sq"], sc["G_opt"]["state"][i]["exp_avg_sq"], rtol=0, atol=1e-9)
    assert sa["alpha_schedule"]["alpha"] == sc["alpha_schedule"]["alpha"]
    # Sanity: the first half really differs from the end state (the test is not vacuous).
    assert _max_diff(b.G, c.G) > 1e-6


def test_nan_in_D_output_stops_with_step_and_keeps_snapshot(tmp_path, tiny_data):
    opts = tiny_options(tiny_data, tmp_path, steps=4, steps_per_tick=1, snap=1, inject_nan_step=2)
    with pytest.raises(training_loop.TrainingDivergedError) as info:
        training_loop.training_loop(**opts)
    msg = str(info.value)
    assert "step 2" in msg and "phase Gboth" in msg and "NaN" in msg
    assert "network-snapshot-000000.pt" in msg
    log = (tmp_path / "log.txt").read_text()
    assert "step 2" in log and "training stopped" in log
    # Snapshots from steps 0 and 1 (ticks 0, 1) exist and load; nothing was written after the NaN.
    snap = load_snapshot(tmp_path / "network-snapshot-000000.pt")
    assert snap.data["progress"]["batch_idx"] == 2
    assert all(torch.isfinite(v).all() for v in snap.G.state_dict().values() if v.is_floating_point())


def test_nan_skip_drops_update_and_continues(tmp_path, tiny_data):
    opts = tiny_options(tiny_data, tmp_path, steps=3, steps_per_tick=3, snap=100, inject_nan_step=1, nan_policy="skip")
    res = training_loop.training_loop(**opts)
    assert res.cur_nimg == 24 and res.nan_skipped == 2  # Gboth and Dboth of step 1
    stats = _stats(tmp_path)
    assert sum(s.get("Progress/nan_skipped", {}).get("num", 0) for s in stats) == 2
    assert all(torch.isfinite(p).all() for p in res.G.parameters())


def test_lazy_regularisation_scales_lr_and_betas():
    """Spec §3.1: with a regulariser every k steps, the main+reg optimiser uses lr * k/(k+1), beta ** (k/(k+1))."""
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    opt = dict(class_name="torch.optim.Adam", lr=0.0025, betas=[0.0, 0.99], eps=1e-8)
    phases = training_loop._make_phases(G, D, opt, opt, 4, 16)
    assert [(p.name, p.interval) for p in phases] == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    g_group, d_group = phases[0].opt.param_groups[0], phases[2].opt.param_groups[0]
    assert phases[1].opt is phases[0].opt and phases[3].opt is phases[2].opt
    assert g_group["lr"] == pytest.approx(0.0025 * 0.8) and d_group["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert g_group["betas"][0] == 0.0 and g_group["betas"][1] == pytest.approx(0.99 ** 0.8)
    assert d_group["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    both = training_loop._make_phases(G, D, opt, opt, None, None)  # no regulariser: unscaled, one phase each
    assert [(p.name, p.interval) for p in both] == [("Gboth", 1), ("Dboth", 1)]
    assert both[0].opt.param_groups[0]["lr"] == 0.0025 and both[0].opt.param_groups[0]["betas"][1] == 0.99

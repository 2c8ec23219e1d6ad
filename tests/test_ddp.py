"""Tests for training/ddp.py and the multi-process training path (2 gloo processes on CPU): the exact
cross-process Rényi gradient, N processes training like one, NaN handling, metrics over all ranks,
and `train.py --gpus=2` end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnnlib.util import UserError
from renyi.coupling import CoupledLossAccumulator
from renyi.losses import renyi_generator_loss
from torch_utils import distributed as D
from training import ddp

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed in this build")

FAST = dict(start_method="forkserver", device="cpu", join_timeout_s=90)
SIZES = [3, 5]  # rank 0 holds 3 samples in 1 round, rank 1 holds 5 in 2 rounds (2 + 3)


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def _inputs() -> torch.Tensor:
    return torch.randn(sum(SIZES), 4, generator=torch.Generator().manual_seed(3)) * 2


def _reference_grads(alpha: float, l1: bool) -> tuple[list[torch.Tensor], float]:
    torch.manual_seed(0)
    net = _net()
    loss = renyi_generator_loss(net(_inputs()), alpha, l1=l1)
    loss.backward()
    return [p.grad.clone() for p in net.parameters()], float(loss.detach())


def _rank_worker(info: D.DistInfo, cases: list) -> list:
    """Per case: the DDP-averaged gradient of the coupled per-rank Rényi loss, and the loss."""
    torch.set_num_threads(1)
    out = []
    for alpha, l1 in cases:
        torch.manual_seed(100 + info.rank)  # different on purpose: DDP must broadcast rank 0's weights
        net = _net()
        if info.rank == 0:
            torch.manual_seed(0)
            net = _net()
        wrapped = ddp.wrap_networks(net, torch.nn.Linear(1, 1), info.device).G
        net.requires_grad_(True)
        x = _inputs()[sum(SIZES[: info.rank]): sum(SIZES[: info.rank + 1])]
        rounds = [x] if info.rank == 0 else [x[:2], x[2:]]
        acc = CoupledLossAccumulator(alpha=alpha, l1=False, total=x.shape[0])
        loss_value = None
        for r, xr in enumerate(rounds):
            last = r == len(rounds) - 1
            with ddp.sync_context(wrapped, last):
                logits = wrapped(xr)
            surrogate, rescale = acc.add_shard(logits)
            if last:
                local, _one = acc.finish()
                factor, loss_value = ddp.renyi_rank_factor(local, x.shape[0], alpha, l1, info.device)
                rescale, surrogate = rescale * factor, surrogate * factor
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.mul_(rescale)
            surrogate.backward()
        out.append(([p.grad.clone() for p in net.parameters()], loss_value))
    problem = ddp.agree_on_problem("loss is nan" if info.rank == 1 else None, info.device)
    fine = ddp.agree_on_problem(None, info.device)
    return [out, problem, fine]


CASES = [(2.5, False), (0.5, True), (1.0, False), (0.0, False), (math.inf, False)]


def test_two_ranks_give_the_full_batch_renyi_gradient():
    results = D.launch(_rank_worker, 2, args=(CASES,), **FAST)
    for rank_result in results:
        out, problem, fine = rank_result
        assert problem == "rank 1: loss is nan" and fine is None
        for (grads, loss_value), (alpha, l1) in zip(out, CASES):
            ref_grads, ref_loss = _reference_grads(alpha, l1)
            assert abs(loss_value - ref_loss) < 1e-5, (alpha, l1)
            err = max(float((g - r).abs().max()) for g, r in zip(grads, ref_grads))
            scale = max(float(r.abs().max()) for r in ref_grads)
            assert scale > 1e-3 and err < 1e-6, (alpha, l1, err, scale)


def test_rank_factor_alone_is_the_identity_or_l1_sign():
    assert ddp.renyi_rank_factor(-0.2, 4, 2.0, False, torch.device("cpu")) == (1.0, -0.2)
    factor, value = ddp.renyi_rank_factor(-0.2, 4, 2.0, True, torch.device("cpu"))
    assert factor == 1.0 and abs(value - (math.log(2) - 0.2)) < 1e-12
    factor, value = ddp.renyi_rank_factor(-1.0, 4, 2.0, True, torch.device("cpu"))  # below -log 2
    assert factor == -1.0 and abs(value - (1.0 - math.log(2))) < 1e-12
    assert all(math.isnan(v) for v in ddp.renyi_rank_factor(float("nan"), 4, 2.0, False, torch.device("cpu")))
    assert ddp.agree_on_problem("x", torch.device("cpu")) == "x"
    with pytest.raises(RuntimeError, match="process group"):
        ddp.wrap_networks(_net(), _net(), torch.device("cpu"))


# ------------------------------------------------------------------------------------------------
# The training loop: N processes == 1 process with the same global batch.


def _loop_worker(info: D.DistInfo, opts: dict) -> dict:
    from training import training_loop

    torch.set_num_threads(1)
    res = training_loop.training_loop(**dict(opts, rank=info.rank, num_gpus=info.world_size, device=str(info.device)))
    return dict(cur_nimg=res.cur_nimg, G=res.G.state_dict(), D=res.D.state_dict(), G_ema=res.G_ema.state_dict(),
                last_snapshot=res.last_snapshot)


def _params_only(module_state: dict, module: torch.nn.Module) -> dict:
    names = {n for n, _ in module.named_parameters()}
    return {k: v for k, v in module_state.items() if k in names}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from helpers_training import make_tiny_mnist

    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "mnist16.zip", n=32)


@pytest.mark.parametrize("batch_gpu, gen_kwargs, snap", [(4, {"alpha": 3.0, "l1": True}, 100), (2, {"alpha": 0.5, "l1": False}, None)])
def test_two_processes_train_like_one_with_the_global_batch(tmp_path, tiny_data, batch_gpu, gen_kwargs, snap):
    """Two steps of --loss=renyi (G, D main and R1 phases, EMA): the weights of 2 gloo processes with
    batch_gpu samples per round equal those of 1 process running both ranks' rounds itself
    (batch 8: 1 vs 2 rounds per process, or 2 vs 4).

    D's dropout is off (its masks are per-process random draws). G's BatchNorm normalises each
    round of batch_gpu latents in both runs, and the loop gives rank k the k-th slice of the step's
    latents, so both runs see the same groups; BatchNorm *running* statistics (buffers) evolve per
    process and are not compared."""
    from helpers_training import tiny_options
    from training import networks_dcgan, training_loop

    def options(run_dir):
        run_dir.mkdir()
        opts = tiny_options(tiny_data, run_dir, loss="renyi", gen_kwargs=gen_kwargs, steps=2, batch=8, batch_gpu=batch_gpu,
                            steps_per_tick=1, snap=snap, ema_kimg=0.02, D_reg_interval=2)
        opts.image_snapshot_ticks = None
        opts.D_kwargs.dropout = 0.0
        opts.loss_kwargs.r1_gamma = 1.0
        return opts

    torch.set_num_threads(1)
    one = training_loop.training_loop(**options(tmp_path / "one"))
    two = D.launch(_loop_worker, 2, args=(dict(options(tmp_path / "two")),), **FAST)

    assert one.cur_nimg == two[0]["cur_nimg"] == two[1]["cur_nimg"] == 16
    G_ref = networks_dcgan.Generator(**one.G.init_kwargs)
    D_ref = networks_dcgan.Discriminator(**one.D.init_kwargs)
    moved = 0.0
    for name, ref_module, net in (("G", G_ref, one.G), ("D", D_ref, one.D), ("G_ema", G_ref, one.G_ema)):
        want = _params_only(net.state_dict(), ref_module)
        for rank in (0, 1):
            got = _params_only(two[rank][name], ref_module)
            assert want.keys() == got.keys()
            err = max(float((want[k] - got[k]).abs().max()) for k in want)
            assert err < 1e-6, (name, rank, err)
        torch.manual_seed(0)
        init = type(ref_module)(**ref_module.init_kwargs).state_dict()
        moved = max(moved, max(float((want[k] - init[k]).abs().max()) for k in want))
    assert moved > 1e-4  # the two steps really changed the weights
    if snap is not None:  # only rank 0 wrote files; the snapshot holds every rank's random state
        from training.snapshot import read_snapshot

        assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
        data = read_snapshot(two[0]["last_snapshot"])
        assert len(data["rng_per_rank"]) == 2 and data["progress"]["cur_nimg"] == 16
        assert not torch.equal(data["rng_per_rank"][0]["torch"], data["rng_per_rank"][1]["torch"])


def test_nan_stops_every_rank_and_keeps_the_snapshot(tmp_path, tiny_data):
    from helpers_training import tiny_options
    from training.snapshot import load_snapshot

    opts = tiny_options(tiny_data, tmp_path, steps=4, steps_per_tick=1, snap=1, inject_nan_step=2)
    opts.image_snapshot_ticks = None
    with pytest.raises(UserError, match=r"rank \d of 2 failed \(exit code 2\): TrainingDivergedError: NaN/inf detected "
                                        r"at step 2 .*phase Gboth: rank 0: .*; rank 1: .*last good snapshot: .*000000.pt"):
        D.launch(_loop_worker, 2, args=(dict(opts),), settle_s=5, **FAST)
    assert "training stopped" in (tmp_path / "log.txt").read_text()
    snap = load_snapshot(tmp_path / "network-snapshot-000000.pt")
    assert snap.data["progress"]["batch_idx"] == 2 and len(snap.data["rng_per_rank"]) == 2


@pytest.mark.slow
def test_train_cli_two_processes_end_to_end(tmp_path, tiny_data, repo_root):
    """`train.py --gpus=2` (spawned gloo processes on CPU) writes one complete run folder."""
    import json
    import subprocess
    import sys

    out = tmp_path / "runs"
    cmd = [sys.executable, str(repo_root / "train.py"), f"--outdir={out}", "--gpus=2", "--device=cpu", f"--data={tiny_data}",
           "--cfg=dcgan", "--kimg=0.016", "--batch=8", "--batch-gpu=2", "--tick=0.008", "--snap=1", "--metrics=none",
           "--loss=renyi", "--alpha=3", "--cbase=8", "--z-dim=16", "--dist-timeout=120"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list(out.iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-renyi3")
    run = runs[0]
    opts = json.loads((run / "training_options.json").read_text())
    assert opts["num_gpus"] == 2 and opts["batch_size"] == 8
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [round(s["Progress/kimg"]["mean"], 3) for s in stats] == [0.008, 0.016]
    assert all(s["Loss/G/loss"]["num"] == 2 for s in stats)  # one value per rank and step, reduced over ranks
    from training.snapshot import load_snapshot

    snap = load_snapshot(run / "network-snapshot-000000.pt")
    assert snap.cur_nimg == 16
    log = (run / "log.txt").read_text()
    assert "Distributed: 2 processes" in log and "Exiting" in log
    assert "Done: 0.016 kimg" in proc.stdout


def _metric_worker(info: D.DistInfo, dataset_kwargs: dict) -> tuple:
    from metrics import metric_main, pipeline
    from test_metrics_pipeline import PixelDetector, TinyG

    torch.set_num_threads(1)
    opts = pipeline.MetricOptions(dataset_kwargs=dataset_kwargs, num_gpus=info.world_size, rank=info.rank,
                                  progress=False, cache=False, batch_size=2)
    feats = pipeline.compute_feature_stats_for_dataset(opts, PixelDetector(), capture_all=True).get_all()
    torch.manual_seed(0)
    res = metric_main.calc_metric("fid10_full", G=TinyG(), dataset_kwargs=dataset_kwargs, num_gpus=info.world_size,
                                  rank=info.rank, progress=False, cache=False, detector_obj=PixelDetector(), batch_size=2)
    return feats, res.results.fid10_full, res.num_gpus


def test_metrics_gather_features_from_every_rank(tmp_path):
    """The loop calls calc_metric on every rank: each rank embeds every 2nd image and the gathered
    features are the whole dataset in order, as in one process; rank 0 gets the metric."""
    from test_metrics_pipeline import make_dataset

    kwargs = make_dataset(tmp_path / "ds", n=10)
    (one_feats, one_fid, _), = D.launch(_metric_worker, 1, args=(kwargs,), **FAST)
    two = D.launch(_metric_worker, 2, args=(kwargs,), **FAST)
    assert one_feats.shape == (10, 48)
    for feats, _fid, num_gpus in two:
        assert num_gpus == 2
        assert np.array_equal(feats, one_feats)
    assert math.isfinite(two[0][1]) and two[0][1] > 0 and math.isfinite(one_fid)

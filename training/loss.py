"""Generator-loss registry (filled by `renyi.register`) and the phase-based GAN loss.

Registry
--------
A generator loss maps the discriminator logits of one batch of generated images, shape ``[N]`` or
``[N, 1]``, to a scalar tensor that the generator minimises. Each entry is a `GeneratorLossSpec`:

- ``name``: the value of ``train.py --loss`` (``ns``, ``renyi``, ``minimax``, ``lk``, ``alpha``).
- ``fn(fake_logits, **params) -> scalar``: the full-batch loss.
- ``batch_level``: False when the loss is the batch mean of per-sample terms (then any split of
  the batch into rounds or processes is exact by averaging); True when it is a statistic of the
  whole batch (the Rényi loss, a log of a batch mean), which the training loop must combine
  exactly across rounds with `renyi.coupling`.
- ``params``: the keyword parameters ``fn`` accepts (e.g. ``("alpha", "l1")``).
- ``discriminator_fn``: None for the standard BCE discriminator loss, or a replacement
  ``fn(real_logits, fake_logits, **params) -> scalar`` for losses that change D too (LkGAN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from dnnlib.util import UserError

GeneratorLossFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class GeneratorLossSpec:
    """One registered generator loss (see the module docstring for the meaning of each field)."""

    name: str
    fn: GeneratorLossFn
    batch_level: bool
    params: tuple[str, ...] = ()
    description: str = ""
    discriminator_fn: Optional[Callable[..., torch.Tensor]] = field(default=None)


GENERATOR_LOSSES: dict[str, GeneratorLossSpec] = {}


def register_generator_loss(
    name: str,
    *,
    batch_level: bool,
    params: tuple[str, ...] = (),
    description: str = "",
    discriminator_fn: Optional[Callable[..., torch.Tensor]] = None,
) -> Callable[[GeneratorLossFn], GeneratorLossFn]:
    """Decorator that registers ``fn`` under ``name``; re-registering the same name replaces it."""

    def decorator(fn: GeneratorLossFn) -> GeneratorLossFn:
        GENERATOR_LOSSES[name] = GeneratorLossSpec(
            name=name,
            fn=fn,
            batch_level=batch_level,
            params=tuple(params),
            description=description,
            discriminator_fn=discriminator_fn,
        )
        return fn

    return decorator


def _load_builtin_losses() -> None:
    # Imported lazily: renyi.register imports this module to call register_generator_loss.
    import renyi.register  # noqa: F401


def list_generator_losses() -> list[str]:
    """Names of all registered generator losses, sorted."""
    _load_builtin_losses()
    return sorted(GENERATOR_LOSSES)


def get_generator_loss(name: str) -> GeneratorLossSpec:
    """The spec registered under ``name``; an unknown name raises `UserError` listing valid ones."""
    _load_builtin_losses()
    try:
        return GENERATOR_LOSSES[name]
    except KeyError:
        valid = ", ".join(sorted(GENERATOR_LOSSES))
        raise UserError(f"unknown generator loss '{name}'; choose one of: {valid}") from None


# ================================================================================================
# The phase-based GAN loss used by the training loop.

import contextlib  # noqa: E402
import math  # noqa: E402
from typing import Any, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


class NonFiniteError(RuntimeError):
    """A loss or logit of one phase is NaN or infinite.

    Attributes: ``phase`` (e.g. ``Dmain``), ``what`` (which quantity) and ``value`` (a float or a
    short description of the offending values). The training loop decides whether to stop or skip.
    """

    def __init__(self, phase: str, what: str, value: Any) -> None:
        super().__init__(f"non-finite {what} in phase {phase}: {value}")
        self.phase, self.what, self.value = phase, what, value


def _describe_nonfinite(t: torch.Tensor) -> str:
    t = t.detach().float().flatten()
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    finite = t[torch.isfinite(t)]
    rng = f", finite range [{float(finite.min()):.4g}, {float(finite.max()):.4g}]" if finite.numel() else ""
    return f"{n_nan} NaN and {n_inf} inf of {t.numel()} values{rng}"


class GANLoss:
    """Losses of the four training phases, accumulated into the networks' gradients.

    Built by the training loop as ``construct_class_by_name(device=..., G=..., D=...,
    augment_pipe=..., reporter=..., amp=..., **loss_kwargs)``.

    Phases (lazy regularisation splits each network's work into a main and a reg phase; a
    network without a reg interval runs one ``*both`` phase doing both):

    - ``Gmain``: the registered generator loss ``L_G(l_fake)`` of ``l_fake = D(aug(G(z)))``
      (``generator_loss`` by name, with ``generator_loss_kwargs``). Per-sample losses are
      accumulated over rounds with weight ``n_r / N`` (exact batch mean); batch-level losses
      (Rényi) are combined exactly over rounds with `renyi.coupling.CoupledLossAccumulator`.
    - ``Greg``: path-length regularisation (generators with a mapping network, ``pl_weight > 0``):
      on ``n_r / pl_batch_shrink`` samples, ``J = d sum(img * y) / d ws`` with
      ``y ~ N(0, 1) / sqrt(H W)``, ``a = sqrt(mean_ws sum_w J^2)``,
      ``pl_mean <- pl_mean + pl_decay (mean(a) - pl_mean)``, penalty ``pl_weight (a - pl_mean)^2``.
    - ``Dmain``: ``mean softplus(l_fake) + mean softplus(-l_real)`` (BCE), or the registry
      entry's ``discriminator_fn(l_real, l_fake, **params)`` (LkGAN).
    - ``Dreg``: R1 on reals through the augmentation, ``(r1_gamma / 2) |d sum(l_real) / d x|^2``.

    Style mixing (generators with a mapping network): with probability ``style_mixing_prob`` the
    ws from index ``k ~ U{1, ..., num_ws - 1}`` on come from a second latent.

    Several processes (``ddp``: the `training.ddp.wrap_networks` wrappers): the trained network
    runs through its DistributedDataParallel wrapper, synchronising gradients only in the phase's
    last backward (earlier rounds under ``no_sync``); the other network runs unwrapped. The
    batch-level Rényi loss is combined over all ranks (`training.ddp.renyi_rank_factor`), so the
    averaged gradient is that of the global batch. NaN/inf checks then record the first problem
    and raise `NonFiniteError` only after the phase's collectives, so all ranks stay in step.

    ``gain`` multiplies every gradient (the reg interval for lazy regularisation). With
    ``amp='bf16'`` the network forwards run under bfloat16 autocast; all loss maths is float32.
    Statistics are reported to ``reporter`` (a `torch_utils.training_stats.Reporter`) with the
    StyleGAN2 names (Loss/scores/real, Loss/signs/real, Loss/G/loss, Loss/D/loss, ...).
    """

    def __init__(
        self,
        device: torch.device,
        G: torch.nn.Module,
        D: torch.nn.Module,
        augment_pipe: Optional[torch.nn.Module] = None,
        reporter: Any = None,
        amp: str = "fp32",
        generator_loss: str = "ns",
        generator_loss_kwargs: Optional[dict] = None,
        r1_gamma: float = 10.0,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 0.0,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        ddp: Optional[dict] = None,
    ) -> None:
        if amp not in ("fp32", "bf16"):
            raise UserError(f"amp must be 'fp32' or 'bf16', got '{amp}'")
        self.device = torch.device(device)
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.reporter = reporter
        self.amp = amp
        self.spec = get_generator_loss(generator_loss)
        params = dict(generator_loss_kwargs or {})
        unknown = sorted(set(params) - set(self.spec.params))
        if unknown:
            raise UserError(
                f"generator loss '{self.spec.name}' takes {list(self.spec.params) or 'no parameters'}, "
                f"not {unknown}; drop those options"
            )
        self.gen_params = params
        self.r1_gamma = float(r1_gamma)
        self.has_mapping = hasattr(G, "mapping") and getattr(G, "num_ws", 0) > 0
        self.style_mixing_prob = float(style_mixing_prob) if self.has_mapping else 0.0
        self.pl_weight = float(pl_weight) if self.has_mapping else 0.0
        self.pl_batch_shrink = max(int(pl_batch_shrink), 1)
        self.pl_decay = float(pl_decay)
        self.pl_mean = torch.zeros([], device=self.device)
        self.ddp = dict(ddp or {})
        self._problem: Optional[NonFiniteError] = None  # first deferred NaN/inf (several processes)

    # -- state that a snapshot must carry ----------------------------------------------------------

    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().cpu().clone(), "gen_params": dict(self.gen_params)}

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean = state["pl_mean"].to(self.device).clone()
        self.gen_params.update(state.get("gen_params", {}))

    def set_generator_param(self, name: str, value: Any) -> None:
        """Change one generator-loss parameter (e.g. ``alpha`` from a schedule)."""
        if name not in self.spec.params:
            raise UserError(f"generator loss '{self.spec.name}' has no parameter '{name}'")
        self.gen_params[name] = value

    def phase_does_work(self, phase: str) -> bool:
        """False for reg phases that have nothing to do (PL off / no mapping, or R1 gamma 0)."""
        if phase == "Greg":
            return self.pl_weight != 0
        if phase == "Dreg":
            return self.r1_gamma != 0
        return True

    # -- helpers -----------------------------------------------------------------------------------

    def _report(self, name: str, value: Any) -> None:
        if self.reporter is not None:
            self.reporter.report(name, value)

    def _autocast(self):
        if self.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check(self, phase: str, what: str, t: torch.Tensor) -> torch.Tensor:
        """Raise `NonFiniteError` on NaN/inf in `t`; with several processes record it instead and
        return `t` with NaN/inf zeroed, so the phase (and its collectives) can run to the end."""
        if bool(torch.isfinite(t.detach()).all()):
            return t
        err = NonFiniteError(phase, what, _describe_nonfinite(t))
        if not self.ddp:
            raise err
        if self._problem is None:
            self._problem = err
        return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)

    def _net(self, name: str, sync: Optional[bool]):
        """(module, context): the plain network (``sync=None``: used as a fixed function), or its
        DDP wrapper synchronising gradients in this forward's backward (True) or not (False)."""
        from training.ddp import sync_context

        plain = {"G": self.G, "D": self.D, "G_mapping": getattr(self.G, "mapping", None),
                 "G_synthesis": getattr(self.G, "synthesis", None)}[name]
        if sync is None or name not in self.ddp:
            return plain, contextlib.nullcontext()
        return self.ddp[name], sync_context(self.ddp[name], sync)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False, sync: Optional[bool] = None):
        """(images, ws or None) for latents z and labels c, with style mixing when enabled.

        ``sync``: see `_net` (only matters with several processes)."""
        if not self.has_mapping:
            G, ctx = self._net("G", sync)
            with self._autocast(), ctx:
                img = G(z, c)
            return img.float(), None
        mapping, ctx_m = self._net("G_mapping", sync)
        synthesis, ctx_s = self._net("G_synthesis", sync)
        with self._autocast():
            with ctx_m:
                ws = mapping(z, c, update_emas=update_emas)
                if self.style_mixing_prob > 0:
                    num_ws = ws.shape[1]
                    cutoff = int(torch.randint(1, num_ws, []).item()) if num_ws > 1 else num_ws
                    if float(torch.rand([])) >= self.style_mixing_prob:
                        cutoff = num_ws
                    if cutoff < num_ws:
                        ws = ws.clone()
                        ws[:, cutoff:] = mapping(torch.randn_like(z), c, update_emas=False)[:, cutoff:]
            with ctx_s:
                img = synthesis(ws, update_emas=update_emas)
        return img.float(), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, sync: Optional[bool] = None) -> torch.Tensor:
        """Logits [N, 1] (float32) of D on the augmented images (``sync``: see `_net`)."""
        D, ctx = self._net("D", sync)
        with self._autocast():
            if self.augment_pipe is not None:
                img = self.augment_pipe(img)
            with ctx:
                logits = D(img, c)
        return logits.float()

    def _gen_logits(self, phase: str, z, c, update_emas: bool = False, sync_G: Optional[bool] = None,
                    sync_D: Optional[bool] = None) -> torch.Tensor:
        img, _ = self.run_G(z, c, update_emas=update_emas, sync=sync_G)
        logits = self.run_D(img, c, sync=sync_D)
        logits = self._check(phase, "D(G(z)) logits", logits)
        self._report("Loss/scores/fake", logits)
        self._report("Loss/signs/fake", logits.sign())
        return logits

    # -- the phases --------------------------------------------------------------------------------

    def accumulate_gradients(
        self,
        phase: str,
        real_img: Sequence[torch.Tensor],
        real_c: Sequence[torch.Tensor],
        gen_z: Sequence[torch.Tensor],
        gen_c: Sequence[torch.Tensor],
        gain: float,
        params: Sequence[torch.Tensor],
    ) -> dict[str, float]:
        """Backpropagate one phase over all rounds (lists of per-round chunks) into `.grad`.

        `params` are the parameters of the network this phase trains (the batch-level coupling
        rescales their accumulated gradients). Returns the phase's scalar losses as floats.
        Raises `NonFiniteError` when a logit or loss is NaN/inf.
        """
        if phase not in PHASES:
            raise ValueError(f"unknown phase '{phase}'")
        self._problem = None
        values = self._accumulate(phase, real_img, real_c, gen_z, gen_c, gain, params)
        if self._problem is not None:
            problem, self._problem = self._problem, None
            raise problem
        return values

    def _accumulate(self, phase, real_img, real_c, gen_z, gen_c, gain, params) -> dict[str, float]:
        values: dict[str, float] = {}
        if phase in ("Gmain", "Gboth"):
            values["G_loss"] = self._accumulate_Gmain(phase, gen_z, gen_c, gain, params)
        if phase in ("Greg", "Gboth") and self.pl_weight != 0:
            values["G_pl"] = self._accumulate_Gpl(phase, gen_z, gen_c, gain)
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        if do_Dmain or do_Dr1:
            values.update(self._accumulate_D(phase, real_img, real_c, gen_z, gen_c, gain, do_Dmain, do_Dr1))
        return values

    def _accumulate_Gmain(self, phase, gen_z, gen_c, gain, params) -> float:
        total = sum(int(z.shape[0]) for z in gen_z)
        fn, kw = self.spec.fn, self.gen_params
        distributed = bool(self.ddp)
        last_round = len(gen_z) - 1
        if self.spec.batch_level and (len(gen_z) > 1 or distributed):
            if self.spec.name != "renyi":
                raise UserError(
                    f"generator loss '{self.spec.name}' is batch-level and has no exact round coupling; "
                    "set --batch-gpu equal to the per-GPU batch and use one process"
                )
            from renyi.coupling import CoupledLossAccumulator

            l1 = bool(kw.get("l1", False))
            # With several processes each rank accumulates the gradient of its own loss L_k; the l1
            # sign and the cross-rank weights are applied as one factor before the synced backward.
            acc = CoupledLossAccumulator(alpha=kw["alpha"], l1=l1 and not distributed, total=total)
            loss_value = math.nan
            for r, (z, c) in enumerate(zip(gen_z, gen_c)):
                logits = self._gen_logits(phase, z, c, sync_G=(r == last_round) if distributed else None)
                surrogate, rescale_prev = acc.add_shard(logits)
                if distributed and r == last_round:
                    from training.ddp import renyi_rank_factor

                    local_loss, _one = acc.finish()
                    factor, loss_value = renyi_rank_factor(local_loss, total, kw["alpha"], l1, self.device)
                    if not math.isfinite(factor):
                        self._check(phase, "generator loss", torch.tensor(loss_value))
                        factor = 0.0
                    rescale_prev, surrogate = rescale_prev * factor, surrogate * factor
                if rescale_prev != 1.0:
                    for p in params:
                        if p.grad is not None:
                            p.grad.mul_(rescale_prev)
                (surrogate * gain).backward()
            if not distributed:
                loss_value, final_scale = acc.finish()
                if not math.isfinite(loss_value):
                    raise NonFiniteError(phase, "generator loss", loss_value)
                if final_scale != 1.0:
                    for p in params:
                        if p.grad is not None:
                            p.grad.mul_(final_scale)
            self._report("Loss/G/loss", loss_value)
            return loss_value
        loss_sum = 0.0
        for r, (z, c) in enumerate(zip(gen_z, gen_c)):
            logits = self._gen_logits(phase, z, c, sync_G=(r == last_round) if distributed else None)
            loss = fn(logits, **kw)
            loss = self._check(phase, "generator loss", loss)
            weight = 1.0 if self.spec.batch_level else z.shape[0] / total
            (loss * (weight * gain)).backward()
            loss_sum += float(loss.detach()) * weight
        self._report("Loss/G/loss", loss_sum)
        return loss_sum

    def _accumulate_Gpl(self, phase, gen_z, gen_c, gain) -> float:
        penalties = []
        last_round = len(gen_z) - 1
        for r, (z, c) in enumerate(zip(gen_z, gen_c)):
            n = max(z.shape[0] // self.pl_batch_shrink, 1)
            img, ws = self.run_G(z[:n], c[:n], sync=(r == last_round) if self.ddp else None)
            pl_noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (pl_grads,) = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[ws], create_graph=True)
            pl_lengths = pl_grads.float().square().sum(2).mean(1).sqrt()
            pl_lengths = self._check(phase, "path lengths", pl_lengths)
            pl_mean = self.pl_mean.lerp(pl_lengths.mean().detach(), self.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            pl_penalty = (pl_lengths - pl_mean).square()
            self._report("Loss/pl_penalty", pl_penalty)
            loss_Gpl = pl_penalty * self.pl_weight
            self._report("Loss/G/reg", loss_Gpl)
            (img[:, 0, 0, 0] * 0 + loss_Gpl).mean().mul(gain).backward()
            penalties.append(float(loss_Gpl.detach().mean()))
        return float(np.mean(penalties))

    def _accumulate_D(self, phase, real_img, real_c, gen_z, gen_c, gain, do_Dmain, do_Dr1) -> dict[str, float]:
        total = sum(int(x.shape[0]) for x in real_img)
        dfn = self.spec.discriminator_fn
        out = {"D_loss": 0.0} if do_Dmain else {}
        if do_Dr1:
            out["D_r1"] = 0.0
        last_round = len(real_img) - 1
        for r, (x, xc, z, c) in enumerate(zip(real_img, real_c, gen_z, gen_c)):
            w = x.shape[0] / total
            # Several processes: D's gradients are averaged in the backward of the last round's
            # reals; the fakes' backward (before it) only accumulates.
            sync_real = (r == last_round) if self.ddp else None
            gen_logits = None
            if do_Dmain:
                gen_logits = self._gen_logits(phase, z, c, update_emas=True, sync_D=False if self.ddp else None)
                if dfn is None:
                    loss_Dgen = F.softplus(gen_logits)
                    self._check(phase, "D loss on fakes", loss_Dgen)
                    loss_Dgen.mean().mul(w * gain).backward()
            real = x.detach().requires_grad_(do_Dr1)
            real_logits = self.run_D(real, xc, sync=sync_real)
            real_logits = self._check(phase, "D(x) logits", real_logits)
            self._report("Loss/scores/real", real_logits)
            self._report("Loss/signs/real", real_logits.sign())
            loss_D = torch.zeros([], device=real_logits.device)
            if do_Dmain:
                if dfn is None:
                    loss_Dreal = F.softplus(-real_logits)
                    self._report("Loss/D/loss", loss_Dgen.detach() + loss_Dreal.detach())
                    out["D_loss"] += float(loss_Dgen.detach().mean() + loss_Dreal.detach().mean()) * w
                    loss_D = loss_Dreal.mean()
                else:
                    loss_D = dfn(real_logits, gen_logits, **self.gen_params)
                    self._report("Loss/D/loss", loss_D.detach())
                    out["D_loss"] += float(loss_D.detach()) * w
                self._check(phase, "discriminator loss", loss_D)
            loss_Dr1 = torch.zeros([], device=real_logits.device)
            if do_Dr1:
                (r1_grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real], create_graph=True)
                r1_penalty = r1_grads.float().square().sum([1, 2, 3])
                self._check(phase, "R1 penalty", r1_penalty)
                self._report("Loss/r1_penalty", r1_penalty)
                loss_Dr1 = (r1_penalty * (self.r1_gamma / 2)).mean()
                self._report("Loss/D/reg", r1_penalty * (self.r1_gamma / 2))
                out["D_r1"] += float(loss_Dr1.detach()) * w
            (real_logits.mean() * 0 + loss_D + loss_Dr1).mul(w * gain).backward()
        return out

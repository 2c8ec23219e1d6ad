"""The grid of a sweep: options -> list of trials (one `train.py` run each), and presets.

A sweep varies the generator loss, the Rényi order alpha, the L1 normalisation, the R1 weight gamma
and the seed. Parameters only multiply the losses that take them: alpha applies to losses with an
``alpha`` parameter (``renyi``, ``alpha``), L1 to losses with an ``l1`` parameter (``renyi``), so
``--loss=ns,renyi --alpha=0.5,3`` gives 1 + 2 settings per seed, not 2 x 2. Gamma (R1) applies to
every loss.

Trial names are ``<loss>[-a<alpha>][-l1|-nol1][-g<gamma>]-s<seed>`` (alpha/l1/gamma parts only when
that option is swept); the name without ``-s<seed>`` is the trial's *setting*, over which the report
averages. Trials are ordered seed-major (all settings for the first seed, then the second seed, ...)
so that an interrupted sweep already holds a complete comparison for its first seeds.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from dnnlib.util import UserError

# Parameters of the built-in losses, used when the training loss registry cannot be imported.
_FALLBACK_LOSS_PARAMS: dict[str, tuple[str, ...]] = {
    "ns": (),
    "minimax": (),
    "renyi": ("alpha", "l1"),
    "alpha": ("alpha",),
    "lk": ("k", "gamma"),
}

# The paper's MNIST seeds (authors' public code; see shared/spec/renyi-loss.md).
PAPER_MNIST_SEEDS = [123, 5005, 1600, 199621, 60677, 20435, 15859, 33764, 79878, 36123]

# Presets: sweep options plus train.py options. Options the user gives explicitly win.
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's MNIST/DCGAN protocol: DCGAN, batch 100, its 10 seeds, the standard loss and Rényi
    # at the fixed orders of its MNIST experiments (alpha 0.5 and 3.0; alpha -> 1 is the original
    # GAN), variants {no penalty, R1 gamma = 10 (coefficient 5)} x {no L1, L1} (L1 only exists for
    # the Rényi loss). 250 epochs of 60k images = 15000 kimg; one tick = one epoch (60 kimg) and a
    # snapshot (with the metrics) every 5 epochs. Their triangle-wave alpha schedules are not part
    # of the preset (use train.py --alpha-schedule by hand).
    "paper-mnist": {
        "losses": ["ns", "renyi"],
        "alphas": [0.5, 3.0],
        "l1": [False, True],
        "gammas": [0.0, 10.0],
        "seeds": PAPER_MNIST_SEEDS,
        "train_args": ["--cfg=dcgan", "--batch=100", "--kimg=15000", "--tick=60", "--snap=5"],
    },
}

# train.py options the sweep sets itself for every trial (never accepted after `--`).
RESERVED_ALWAYS = ("--outdir", "--seed", "--resume", "--loss", "--alpha", "--alpha-schedule")


def loss_params(loss: str) -> tuple[str, ...]:
    """The keyword parameters of generator loss ``loss`` (from the registry when it is available)."""
    try:
        from training.loss import get_generator_loss

        return tuple(get_generator_loss(loss).params)
    except UserError:
        raise
    except Exception:  # the registry's modules are not importable: use the documented table
        if loss not in _FALLBACK_LOSS_PARAMS:
            raise UserError(
                f"unknown generator loss '{loss}' in --loss; choose from {', '.join(_FALLBACK_LOSS_PARAMS)}"
            ) from None
        return _FALLBACK_LOSS_PARAMS[loss]


def fmt_num(x: float) -> str:
    """Compact, file-name-safe number: 3.0 -> '3', 0.5 -> '0.5', inf -> 'inf'."""
    if math.isinf(x):
        return "inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def parse_float_list(text: str, option: str, allow_inf: bool = True) -> list[float]:
    """``'0.5,1,inf'`` -> [0.5, 1.0, inf]; order kept, duplicates dropped, negatives/NaN rejected."""
    out: list[float] = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        try:
            x = float(part)
        except ValueError:
            raise UserError(f"{option}: '{part}' is not a number (give a comma list like 0.5,3,inf)") from None
        if math.isnan(x) or x < 0 or (math.isinf(x) and not allow_inf):
            raise UserError(f"{option}: {part} is not allowed (use finite values >= 0{', or inf' if allow_inf else ''})")
        if x not in out:
            out.append(x)
    if not out:
        raise UserError(f"{option}: empty list")
    return out


def parse_int_list(text: str, option: str) -> list[int]:
    """``'1,5-7'`` -> [1, 5, 6, 7] (inclusive ranges); order kept, duplicates dropped."""
    out: list[int] = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        try:
            values = list(range(int(m.group(1)), int(m.group(2)) + 1)) if m else [int(part)]
        except ValueError:
            raise UserError(f"{option}: '{part}' is not an integer or a range a-b") from None
        for v in values:
            if v < 0:
                raise UserError(f"{option}: {v} is negative")
            if v not in out:
                out.append(v)
    if not out:
        raise UserError(f"{option}: empty list")
    return out


def parse_bool_list(text: str, option: str) -> list[bool]:
    """``'off,on'`` -> [False, True] (also true/false, yes/no, 1/0)."""
    truthy, falsy = {"on", "true", "yes", "1"}, {"off", "false", "no", "0"}
    out: list[bool] = []
    for part in [p.strip().lower() for p in str(text).split(",") if p.strip()]:
        if part in truthy:
            v = True
        elif part in falsy:
            v = False
        else:
            raise UserError(f"{option}: '{part}' is not on/off")
        if v not in out:
            out.append(v)
    if not out:
        raise UserError(f"{option}: empty list")
    return out


def option_name(arg: str) -> Optional[str]:
    """``'--kimg=4'`` -> ``'--kimg'``; ``'--kimg'`` -> ``'--kimg'``; a value -> None."""
    if arg.startswith("--"):
        return arg.split("=", 1)[0]
    return None


@dataclass(frozen=True)
class Trial:
    """One train.py run of the grid."""

    loss: str
    seed: int
    alpha: Optional[float] = None
    l1: Optional[bool] = None
    gamma: Optional[float] = None

    @property
    def setting(self) -> str:
        parts = [self.loss]
        if self.alpha is not None:
            parts.append(f"a{fmt_num(self.alpha)}")
        if self.l1 is not None:
            parts.append("l1" if self.l1 else "nol1")
        if self.gamma is not None:
            parts.append(f"g{fmt_num(self.gamma)}")
        return "-".join(parts)

    @property
    def name(self) -> str:
        return f"{self.setting}-s{self.seed}"

    def train_options(self) -> list[str]:
        """The train.py options this trial sets (besides --outdir and --resume)."""
        args = [f"--seed={self.seed}", f"--loss={self.loss}"]
        if self.alpha is not None:
            args.append(f"--alpha={fmt_num(self.alpha)}")
        if self.l1:
            args.append("--l1")  # a flag in train.py: absent means no L1
        if self.gamma is not None:
            args.append(f"--gamma={fmt_num(self.gamma)}")
        return args

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.alpha is not None and math.isinf(self.alpha):
            d["alpha"] = "inf"  # JSON has no infinity
        d.update(name=self.name, setting=self.setting)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Trial":
        alpha = d.get("alpha")
        return Trial(
            loss=str(d["loss"]),
            seed=int(d["seed"]),
            alpha=None if alpha is None else float(alpha),
            l1=d.get("l1"),
            gamma=None if d.get("gamma") is None else float(d["gamma"]),
        )


@dataclass
class SweepSpec:
    """Everything that defines a sweep's trials (stored in sweep.json, compared on restart)."""

    losses: list[str]
    seeds: list[int]
    alphas: Optional[list[float]] = None
    l1: Optional[list[bool]] = None
    gammas: Optional[list[float]] = None
    train_args: list[str] = field(default_factory=list)
    preset: Optional[str] = None
    eval_metrics: list[str] = field(default_factory=list)  # evaluated by the sweep after training
    eval_precision: str = "fp32"
    eval_snapshots: str = "all"  # all | last | comma list of kimg

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.alphas is not None:
            d["alphas"] = [("inf" if math.isinf(a) else a) for a in self.alphas]
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "SweepSpec":
        alphas = d.get("alphas")
        return SweepSpec(
            losses=list(d["losses"]),
            seeds=[int(s) for s in d["seeds"]],
            alphas=None if alphas is None else [float(a) for a in alphas],
            l1=None if d.get("l1") is None else [bool(v) for v in d["l1"]],
            gammas=None if d.get("gammas") is None else [float(g) for g in d["gammas"]],
            train_args=[str(a) for a in d.get("train_args", [])],
            preset=d.get("preset"),
            eval_metrics=[str(m) for m in d.get("eval_metrics", [])],
            eval_precision=str(d.get("eval_precision", "fp32")),
            eval_snapshots=str(d.get("eval_snapshots", "all")),
        )


def build_spec(
    *,
    loss: Optional[str],
    alpha: Optional[str],
    l1: Optional[str],
    gamma: Optional[str],
    seeds: Optional[str],
    preset: Optional[str],
    train_args: list[str],
    eval_metrics: Optional[str] = None,
    eval_precision: str = "fp32",
    eval_snapshots: str = "all",
) -> SweepSpec:
    """Combine the command-line options (strings as typed) with a preset into a `SweepSpec`."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"--preset: unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
        base = PRESETS[preset]
    alphas = parse_float_list(alpha, "--alpha") if alpha is not None else base.get("alphas")
    l1s = parse_bool_list(l1, "--l1") if l1 is not None else base.get("l1")
    gammas = parse_float_list(gamma, "--gamma", allow_inf=False) if gamma is not None else base.get("gammas")
    seed_list = parse_int_list(seeds, "--seeds") if seeds is not None else base.get("seeds")
    if seed_list is None:
        raise UserError("--seeds is required for a new sweep (e.g. --seeds=123,5005,1600), or use --preset")
    if loss is not None:
        losses = [p.strip() for p in loss.split(",") if p.strip()]
        if not losses:
            raise UserError("--loss: empty list")
        losses = list(dict.fromkeys(losses))
    elif "losses" in base:
        losses = list(base["losses"])
    else:
        losses = ["renyi"] if alphas is not None or l1s is not None else ["ns"]

    user_args = list(train_args)
    reserved = list(RESERVED_ALWAYS)
    if l1s is not None:
        reserved.append("--l1")
    if gammas is not None:
        reserved.append("--gamma")
    for arg in user_args:
        name = option_name(arg)
        if name in reserved:
            raise UserError(
                f"'{arg}' after '--': the sweep sets {name} itself; use the sweep's own option "
                f"(--loss/--alpha/--l1/--gamma/--seeds) or drop it"
            )
    given = {option_name(a) for a in user_args if option_name(a)}
    preset_args = [a for a in base.get("train_args", []) if option_name(a) not in given]
    spec = SweepSpec(
        losses=losses,
        seeds=list(seed_list),
        alphas=None if alphas is None else list(alphas),
        l1=None if l1s is None else list(l1s),
        gammas=None if gammas is None else list(gammas),
        train_args=preset_args + user_args,
        preset=preset,
        eval_metrics=[m.strip() for m in (eval_metrics or "").split(",") if m.strip() and m.strip() != "none"],
        eval_precision=eval_precision,
        eval_snapshots=eval_snapshots,
    )
    from renyi.evaluate import select_kimgs

    select_kimgs([], eval_snapshots)  # validates the value
    if eval_precision not in ("fp32", "bf16"):
        raise UserError(f"--eval-precision: '{eval_precision}' is not fp32 or bf16")
    if spec.eval_metrics:
        try:
            from metrics import metric_main
        except ImportError as err:
            raise UserError(f"--eval-metrics: the metrics package is not available ({err})") from None
        bad = [m for m in spec.eval_metrics if not metric_main.is_valid_metric(m)]
        if bad:
            raise UserError(f"--eval-metrics: unknown metric(s) {', '.join(bad)}; e.g. fid2k")
    expand(spec)  # validates losses and that every swept parameter applies to some loss
    return spec


def expand(spec: SweepSpec) -> list[Trial]:
    """The trials of ``spec`` in seed-major order (see the module docstring)."""
    params = {loss: loss_params(loss) for loss in spec.losses}
    if spec.alphas is not None and not any("alpha" in p for p in params.values()):
        raise UserError(f"--alpha given but none of the losses {spec.losses} takes alpha; add --loss=renyi")
    if spec.l1 is not None and not any("l1" in p for p in params.values()):
        raise UserError(f"--l1 given but none of the losses {spec.losses} takes l1; add --loss=renyi")
    settings: list[tuple[str, Optional[float], Optional[bool], Optional[float]]] = []
    for loss in spec.losses:
        alphas = spec.alphas if (spec.alphas is not None and "alpha" in params[loss]) else [None]
        l1s = spec.l1 if (spec.l1 is not None and "l1" in params[loss]) else [None]
        gammas = spec.gammas if spec.gammas is not None else [None]
        for gamma in gammas:
            for l1 in l1s:
                for a in alphas:
                    settings.append((loss, a, l1, gamma))
    return [Trial(loss=lo, seed=s, alpha=a, l1=l1, gamma=g) for s in spec.seeds for (lo, a, l1, g) in settings]

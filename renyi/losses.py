"""GAN losses computed from discriminator logits: the Rényi generator loss and its relatives.

Notation (see ``shared/spec/renyi-loss.md``): ``l`` is a discriminator logit, ``D = sigmoid(l)``,
``log D = -softplus(-l)`` and ``log(1 - D) = -softplus(l)``. Every function takes logits of shape
``[N]`` or ``[N, 1]`` and returns a scalar tensor. Inputs in float16/bfloat16 (e.g. produced under
autocast) are reduced in float32 with autocast switched off; float32 and float64 inputs are
reduced in their own precision.

Bad input raises `ValueError` naming the argument: an empty batch, a wrong shape, a non-finite
logit, or a parameter outside its legal range. (The finiteness check reads one boolean back from
the device, i.e. one synchronisation per call on a GPU.)
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

LOG2 = math.log(2.0)

# Below this |alpha - 1| the Rényi loss uses its first-order cumulant series (see `_scaled_lme`).
SERIES_THRESHOLD = 1e-20
# The exponent window of the expm1/log1p form (see `_scaled_lme`): y is clamped to [-60, 1].
_EXPM1_LOW, _EXPM1_HIGH = -60.0, 1.0
# alpha-loss GAN: the exponent of the power term is capped here so the value stays finite.
ALPHA_LOSS_MAX_EXPONENT = 80.0

__all__ = [
    "LOG2",
    "check_alpha",
    "prepare_logits",
    "renyi_generator_loss",
    "renyi_from_log_one_minus_d",
    "scaled_log_mean_exp",
    "discriminator_loss",
    "nonsaturating_generator_loss",
    "minimax_generator_loss",
    "lk_generator_loss",
    "lk_discriminator_loss",
    "alpha_generator_loss",
]


# ------------------------------------------------------------------------------------------------
# Input checks.


def check_alpha(alpha: object, name: str = "alpha", *, allow_zero: bool = True) -> float:
    """Return ``alpha`` as a float after checking it is a real number in ``[0, inf]``.

    Raises `ValueError` (naming ``name`` and the legal range) for bools, non-numbers, NaN and
    negative values; with ``allow_zero=False`` also for 0 (range ``(0, inf]``).
    """
    legal = "a float >= 0 or float('inf')" if allow_zero else "a float > 0 or float('inf')"
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"{name} must be {legal}, got {alpha!r} of type {type(alpha).__name__}")
    value = float(alpha)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {legal}, got {value!r}")
    return value


def prepare_logits(logits: object, name: str = "fake_logits") -> torch.Tensor:
    """Flatten logits ``[N]`` or ``[N, 1]`` to ``[N]`` and check them (non-empty, finite, floating).

    Integer tensors are converted to float32; float16/bfloat16 to float32 (the reduction dtype).
    """
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N] or [N, 1], got {type(logits).__name__}")
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim != 1:
        raise ValueError(f"{name} must have shape [N] or [N, 1], got {list(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch; the loss needs at least one sample (N >= 1)")
    if not logits.is_floating_point():
        if logits.is_complex():
            raise ValueError(f"{name} must be real-valued, got dtype {logits.dtype}")
        logits = logits.to(torch.float32)
    elif logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.to(torch.float32)
    if not bool(torch.isfinite(logits.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values; logits must be finite real numbers")
    return logits


@contextlib.contextmanager
def _autocast_off(t: torch.Tensor) -> Iterator[None]:
    """Run the enclosed reduction without autocast on ``t``'s device type (when supported)."""
    try:
        ctx = torch.autocast(device_type=t.device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        ctx = contextlib.nullcontext()
    with ctx:
        yield


# ------------------------------------------------------------------------------------------------
# Rényi generator loss.


def scaled_log_mean_exp(v: torch.Tensor, a: float, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(1/a) * log( sum_i w_i exp(a * v_i) )`` for finite ``a``, weights ``w`` summing to 1.

    ``w`` is uniform (``1/N``) when ``weights`` is None. The value is a "power mean in the log
    domain": it tends to ``sum_i w_i v_i`` as ``a -> 0`` and is computed without 0/0 and without
    cancellation for every ``a``:

    - ``mu = sum_i w_i v_i`` and ``d_i = v_i - mu`` (``mu`` detached; the identity below holds for
      any constant shift, so the gradient is exact), ``y_i = a d_i``, ``m = max_i y_i`` (>= 0);
    - if ``m < 1``: ``mu + log1p( sum_i w_i expm1(y_i) ) / a``. Here ``sum_i w_i exp(y_i) >= 1``
      (Jensen), so the rounding error of the result is about ``eps * mean|d|`` for any ``a != 0``:
      there is no ``(LSE - log N)/a`` cancellation near ``a = 0``;
    - else: ``r + logsumexp_i( a (v_i - r) + log w_i ) / a`` with the detached reference
      ``r = max v`` (``a > 0``) or ``min v`` (``a < 0``), so every exponent is ``<= 0`` and nothing
      overflows; its error is about ``eps * max|d| * (1 + log N)`` because ``|a| max|d| >= 1``.
    - if ``|a| < SERIES_THRESHOLD`` (1e-20): the cumulant series ``mu + a/2 * Var_w(v)``, whose
      truncation error ``a^2 |k3| / 6`` is far below float64 precision (this branch exists only so
      that ``1/a`` never overflows in float32); ``a == 0`` gives exactly ``mu``.

    The gradient with respect to ``v_i`` is ``softmax_i(a v_i + log w_i)`` in every branch.
    """
    n = v.shape[0]
    if weights is None:
        w = torch.full_like(v, 1.0 / n)
    else:
        w = weights.to(dtype=v.dtype, device=v.device)
    mu_attached = (w * v).sum()
    if abs(a) < SERIES_THRESHOLD:
        var = (w * (v - mu_attached.detach()) ** 2).sum()
        return mu_attached + (0.5 * a) * var if a != 0 else mu_attached
    mu = mu_attached.detach()
    y = a * (v - mu)
    small = y.detach().max() < _EXPM1_HIGH
    # Form A (expm1/log1p around the weighted mean); clamped so the unused branch stays finite.
    y_a = y.clamp(min=_EXPM1_LOW, max=_EXPM1_HIGH)
    form_a = mu + torch.log1p((w * torch.expm1(y_a)).sum()) / a
    # Form B (log-sum-exp shifted so every exponent is <= 0).
    ref = v.detach().max() if a > 0 else v.detach().min()
    form_b = ref + torch.logsumexp(a * (v - ref) + torch.log(w), dim=0) / a
    return torch.where(small, form_a, form_b)


def renyi_from_log_one_minus_d(s: torch.Tensor, alpha: float) -> torch.Tensor:
    """The Rényi generator loss from ``s_i = log(1 - D_i)`` (already checked; ``alpha`` a float).

    ``(logsumexp_i((alpha-1) s_i) - log N) / (alpha-1)`` evaluated stably by
    `scaled_log_mean_exp`; ``alpha = 1`` gives ``mean s``; ``alpha = inf`` gives ``max s`` (the
    gradient goes to the first maximal sample only, as `torch.argmax` picks it).
    """
    if math.isinf(alpha):
        return s[torch.argmax(s.detach())]
    return scaled_log_mean_exp(s, alpha - 1.0)


def renyi_generator_loss(fake_logits: torch.Tensor, alpha: float, l1: bool = False) -> torch.Tensor:
    """The Rényi generator loss of Bhatia et al. from the logits ``l_i`` of N generated samples.

    ``L = 1/(alpha-1) * log( mean_i (1 - D_i)^(alpha-1) )``, computed as
    ``s_i = -softplus(l_i)`` (``= log(1 - D_i)``) and
    ``L = ( logsumexp_i((alpha-1) s_i) - log N ) / (alpha-1)`` (stable form, see
    `scaled_log_mean_exp`; never overflows, continuous with continuous gradients through
    ``alpha = 1``). Special values: ``alpha = 1`` -> ``mean_i s_i`` (saturating minimax loss);
    ``alpha = 2`` -> ``log(1 - mean_i D_i)``; ``alpha = 0`` -> ``-log mean_i 1/(1-D_i)`` (the
    ``alpha -> 0+`` limit); ``alpha = inf`` -> ``max_i s_i`` (ties: the first maximal sample gets
    the gradient). At ``D_i = 1/2`` for all i, ``L = -log 2`` for every alpha.

    Gradient: ``dL/dl_i = -w_i D_i`` with ``w = softmax((alpha-1) s)``.

    ``l1=True`` returns ``|L + log 2|`` (the paper's "L1 normalisation" of the DCGAN variant).

    Args:
        fake_logits: ``[N]`` or ``[N, 1]`` discriminator logits of generated samples, finite.
        alpha: the Rényi order, a float ``>= 0`` or ``float('inf')``.
        l1: return the distance from the equilibrium value ``-log 2`` instead.
    """
    alpha_f = check_alpha(alpha)
    if not isinstance(l1, (bool, int)):
        raise ValueError(f"l1 must be a bool, got {l1!r}")
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        s = -F.softplus(logits)
        loss = renyi_from_log_one_minus_d(s, alpha_f)
        if l1:
            loss = (loss + LOG2).abs()
    return loss


# ------------------------------------------------------------------------------------------------
# The standard discriminator loss and the relatives of the Rényi generator loss.


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The original GAN's discriminator loss (binary cross-entropy from logits).

    ``L_D = mean softplus(-l_real) + mean softplus(l_fake) = -mean log D(x) - mean log(1 - D(G(z)))``.
    """
    real = prepare_logits(real_logits, "real_logits")
    fake = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(real):
        return F.softplus(-real).mean() + F.softplus(fake).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic generator loss (StyleGAN2's default).

    ``L_G = mean_i softplus(-l_i) = -mean_i log D_i``.
    """
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        return F.softplus(-logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Saturating minimax generator loss of the original GAN.

    ``L_G = mean_i log(1 - D_i) = -mean_i softplus(l_i)``; equal to the Rényi loss at alpha = 1.
    """
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        return -F.softplus(logits).mean()


def _check_positive(value: object, name: str, minimum: float, inclusive: bool = True) -> float:
    op = ">=" if inclusive else ">"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite float {op} {minimum}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < minimum or (v == minimum and not inclusive):
        raise ValueError(f"{name} must be a finite float {op} {minimum}, got {v!r}")
    return v


def _check_finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    return float(value)


def lk_generator_loss(fake_logits: torch.Tensor, k: float = 2.0, gamma: float = 1.0) -> torch.Tensor:
    """Least kth-order (LkGAN) generator loss (Bhatia et al., Neural Computation 2021).

    LkGAN keeps LSGAN's discriminator (least-squares targets on the *raw* discriminator output,
    no sigmoid: here the "logit" tensor ``l`` is that output, ``D(x) = l``) and replaces the
    generator's squared error by a kth-order absolute error with target ``gamma``:

        ``L_G = mean_i |l_i - gamma|^k``,  ``k >= 1``.

    (The paper writes ``1/2 E_p|D(x)-c|^k + 1/2 E_q|D(G(z))-c|^k``; the first term does not depend
    on G, and the constant factor 1/2 is dropped as in the project spec.) ``k = 2`` gives LSGAN's
    generator loss ``mean (l_i - gamma)^2`` (``gamma = c = 1`` is LSGAN's 0-1 coding).
    """
    k_f = _check_positive(k, "k", 1.0)
    gamma_f = _check_finite(gamma, "gamma")
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        return (logits - gamma_f).abs().pow(k_f).mean()


def lk_discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_target: float = 1.0,
    fake_target: float = 0.0,
    **_generator_params: float,
) -> torch.Tensor:
    """LSGAN/LkGAN discriminator loss on the raw discriminator output (no sigmoid).

    ``L_D = 1/2 mean (l_real - b)^2 + 1/2 mean (l_fake - a)^2`` with ``b = real_target`` (1) and
    ``a = fake_target`` (0). Extra keyword arguments (the generator's ``k``, ``gamma``) are
    accepted and ignored so the registry can pass one parameter dict to both losses.
    """
    b = _check_finite(real_target, "real_target")
    a = _check_finite(fake_target, "fake_target")
    real = prepare_logits(real_logits, "real_logits")
    fake = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(real):
        return 0.5 * (real - b).square().mean() + 0.5 * (fake - a).square().mean()


def alpha_generator_loss(fake_logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """Generator term of the alpha-loss GAN (Kurri, Sypherd, Sankar 2021).

    The value function is ``V = a/(a-1) [E_p D^((a-1)/a) + E_q (1-D)^((a-1)/a) - 2]``; the
    generator minimises its G-dependent half

        ``L_G = a/(a-1) * mean_i [ (1 - D_i)^((a-1)/a) - 1 ] = mean_i expm1(c s_i) / c``,

    with ``c = (a-1)/a`` and ``s_i = log(1 - D_i) = -softplus(l_i)``. ``a = 1`` (``c = 0``) gives
    ``mean_i s_i = mean log(1 - D_i)``, the original GAN's generator term; ``a = inf`` gives
    ``-mean D_i``. Legal range ``alpha`` in ``(0, inf]``. For ``a < 1`` the power grows without
    bound as ``D -> 1``; the exponent ``c s_i`` is capped at ``ALPHA_LOSS_MAX_EXPONENT`` (80) so
    the value stays finite (its gradient is zero beyond the cap).
    """
    a = check_alpha(alpha, "alpha", allow_zero=False)
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        s = -F.softplus(logits)
        c = 1.0 if math.isinf(a) else (a - 1.0) / a
        if abs(c) < SERIES_THRESHOLD:  # expm1(c s)/c = s + c s^2/2 + O(c^2); avoids 0/0 in float32
            return (s + (0.5 * c) * s.square()).mean()
        return (torch.expm1((c * s).clamp(max=ALPHA_LOSS_MAX_EXPONENT)) / c).mean()

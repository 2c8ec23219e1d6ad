"""Device-agnostic, twice-differentiable image ops in pure PyTorch (bias_act, upfirdn2d, ...)."""

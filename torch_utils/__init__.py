"""PyTorch helpers that know nothing about GANs in particular.

`torch_utils.ops` holds the differentiable image operations the StyleGAN2 networks are built from
(bias + activation, FIR up/down-sampling, resampling convolutions, fused multiply-add), written in
plain PyTorch so they run on any device and differentiate twice. `torch_utils.misc` holds small
tensor utilities (shape checks, parameter copying, the infinite sampler) and
`torch_utils.training_stats` the named running statistics that training reports per tick.
"""

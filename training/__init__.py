"""Everything a training run is made of.

`training.dataset` reads image datasets (a zip or folder of PNGs plus `dataset.json`),
`training.networks_dcgan` and `training.networks_stylegan2` define the generators and
discriminators, `training.loss` holds the generator-loss registry and the phase-based GAN loss
(non-saturating, Rényi and relatives, R1, path length), `training.augment` the adaptive
discriminator augmentation, and `training.training_loop` drives them and writes the run folder.
"""

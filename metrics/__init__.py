"""Image-quality metrics computed the way the GAN literature does.

The FID Inception-v3 feature detector (`metrics.inception`), feature statistics with an on-disk
cache for datasets, and the registered metrics (FID, KID, precision/recall, Inception Score) that
`train.py --metrics` and `calc_metrics.py` run by name. Metrics need only a generator or a set of
images, never the training loop.
"""

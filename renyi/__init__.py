"""The Rényi generator loss family (Bhatia et al., arXiv 2006.02479) as pure tensor math.

`renyi.losses` computes the Rényi generator loss and its relatives from discriminator logits with
stable `softplus`/`logsumexp` forms, `renyi.coupling` combines batch shards so the batch-level
Rényi loss stays exact under gradient accumulation and multiple processes, `renyi.schedule`
provides constant and triangle-wave alpha schedules, and `renyi.register` puts the losses into the
training loss registry (`training.loss`), the package's only link to `training/`.
"""

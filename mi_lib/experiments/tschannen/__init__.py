"""Tschannen et al. (2019), "On Mutual Information Maximization for Representation Learning": one module a figure.

- :mod:`.common`: the MNIST views, the shared configuration (:class:`~.common.MNISTConfig` with its
  :class:`~.common.TrainSpec` and :class:`~.common.CriticSizes`) and the training loop :func:`~.common.train_views`.
- :mod:`.fig1_invertible` (Fig. 1a,b), :mod:`.fig1c_adversarial` (Fig. 1c), :mod:`.fig2_hard` (Fig. 2),
  :mod:`.fig3_critics` (Fig. 3), :mod:`.fig4ab_matched` (Fig. 4a,b), :mod:`.fig4c_noniid` (Fig. 4c).

See ``book/critique.md``.
"""

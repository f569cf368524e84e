"""Contrastive fine-tuning, in modules with one job each.

``trainer`` is the entry point (:func:`~polyir.training.trainer.train`); ``loop`` wires the run:
``data`` (sources, held-out split), ``distributed`` (torchrun, DDP), ``losses`` (InfoNCE,
distillation, alignment, summed by a weighted objective; tensor maths in ``loss`` and
``regularizers``), ``gradcache``, ``validation``, ``checkpoint``, ``rundir``, ``optim``. ``config`` is
the typed config and ``overrides`` the ``--set`` parser shared with the experiment config.
"""

"""Contrastive fine-tuning: the InfoNCE loss, the training config, and the trainer.

``polyir.training.loss`` holds pure tensor functions (in-batch and hard negatives, symmetric term,
cross-device negatives); ``polyir.training.config`` the validated YAML config; and
``polyir.training.trainer`` the loop (hybrid-batch sampler → encoder → loss, GradCache, validation,
checkpoints, early stopping, ``torchrun``).
"""

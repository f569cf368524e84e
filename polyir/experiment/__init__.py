"""Experiments: train monolingual, cross-lingual and hybrid arms from one base model and compare them."""

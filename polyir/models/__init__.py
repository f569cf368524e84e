"""Models: the Encoder, model spec resolution, and models shipped inside PyPI packages."""

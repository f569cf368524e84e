"""Training-free de-biasing of multilingual embeddings (language-subspace projection, centring)."""

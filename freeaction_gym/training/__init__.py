"""Training: typed configs, data banks, the DiT and autoencoder trainers, validation."""

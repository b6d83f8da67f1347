"""The autoencoder: its network, the LightningModule, batches, training, encoding and the encoded store."""

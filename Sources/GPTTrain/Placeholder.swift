// Configs, the data loader, the training loop.

// HDF5 files: corpus, tokenizers, checkpoints.

"""Examples of bringing your own model, data and augmentation (see examples/README.md)."""

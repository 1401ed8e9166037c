"""The framework: the stage declaration, its cache and records, the store, fingerprints."""

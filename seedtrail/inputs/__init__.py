"""What a run reads: built-in data sets, the user's data, code and augmentation files."""

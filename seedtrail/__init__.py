"""seedtrail's shared machinery: fingerprints, atomic files, the array store, run directories."""

"""Inputs: datasets as indexes and arrays, and the input pipeline that streams them."""

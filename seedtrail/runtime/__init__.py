"""This process's runtime: TensorFlow and its configuration, the machine, quiet imports."""

"""seedtrail's library, in layers; a layer imports only the layers below it.

    core       the framework: stage declaration, cache, store, fingerprints, pipeline table
    runtime    this process's TensorFlow, the machine, quiet imports, Keras files
    inputs     built-in data sets and what the user brings (data, code, augmentation files)
    run        one training run: the pipeline over tasks/, run directory, manifest, report
    compare    two runs side by side
    sweep      many seeds of one configuration
    cli        the flows' command lines

`settings/` (the configuration) sits just above `core`, `tasks/` (the stages) between
`inputs` and `run`, and `flows/` on top. tests/test_layout.py holds the order and checks it.
"""

"""What the per-batch and per-variable records cost (issue 20): training with and without them.

The train stage's model (the built-in CNN) and batch size, on random images of the given
size, under the threads and determinism every run applies. Both variants are timed
alternately (ABAB...), each on a fresh model, and the medians compared, so a load change
on a shared machine hits both. "with" is what tasks/train.py does: the loss recorder
installed (one assignment in the training graph, one scalar read per batch) and every
weight variable fingerprinted after each epoch.

    python -m benchmarks.divergence_cost                       # the default run's shapes
    python -m benchmarks.divergence_cost --image-size 64 --filters 32,64,128 --dense-units 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-samples", type=int, default=840)  # the default run's train split
    p.add_argument("--image-size", type=int, default=24)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--filters", default="16,32")
    p.add_argument("--dense-units", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import numpy as np

    from seedtrail.inputs.builtin_models import cnn
    from seedtrail.runtime import hardware, tf_runtime
    from seedtrail.runtime.batch_records import BatchLosses, variable_fingerprints
    from settings.model import DeterminismSettings

    tf_runtime.configure(DeterminismSettings(), 0, hardware.expected_devices(hardware.gpu_facts()))
    tf_runtime.configured_tf()
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((args.n_samples, args.image_size, args.image_size, 1), dtype=np.float32)
    y = rng.integers(0, 4, args.n_samples)
    filters = [int(f) for f in args.filters.split(",")]

    def run(record: bool) -> tuple[float, float]:
        keras.utils.set_random_seed(0)
        model = cnn(x.shape[1:], 4, seed=0, conv_filters=filters, dense_units=args.dense_units)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=False,
        )
        recorder = BatchLosses()
        callbacks = []
        if record:
            recorder.install(model)
            callbacks.append(recorder.callback())
        model.fit(x[:64], y[:64], batch_size=args.batch_size, epochs=1, verbose=0)  # trace
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.epochs):
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, callbacks=callbacks)
            if record:
                recorder.take()
                variable_fingerprints(model)
        return time.perf_counter() - start, time.process_time() - cpu

    def components() -> tuple[float, float, int]:
        """Host-side cost of the records, per batch and per epoch: small enough to time
        alone (the in-graph assignment is in the A/B figures only)."""
        model = cnn(x.shape[1:], 4, seed=0, conv_filters=filters, dense_units=args.dense_units)
        recorder = BatchLosses()
        # CPU time: on a loaded machine a tiny op's wall time is mostly waiting for a core
        start = time.process_time()
        for _ in range(2000):
            float(recorder._last.numpy())  # what the callback does after each batch
        per_batch = (time.process_time() - start) / 2000
        start = time.process_time()
        for _ in range(20):
            variable_fingerprints(model)
        return per_batch, (time.process_time() - start) / 20, model.count_params()

    per_batch, per_epoch, params = components()
    batches = -(-args.n_samples // args.batch_size)
    print(
        f"components (CPU time): {per_batch * 1e6:.1f} µs per batch (loss read), {per_epoch * 1e3:.2f} ms "
        f"per epoch (variable fingerprints, {params} parameters): "
        f"{(per_batch * batches + per_epoch) * 1e3:.2f} ms per epoch of {batches} batches"
    )
    if args.repeats == 0:
        return

    # CPU time (all threads) as well as wall time: on a loaded machine the wall clock
    # measures the neighbours; the CPU this process spent is what the records cost.
    times: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for record in (False, True):
            wall, cpu = run(record)
            times[record].append(wall)
            cpus[record].append(cpu)
    plain, rec = statistics.median(times[False]), statistics.median(times[True])
    cpu_plain, cpu_rec = statistics.median(cpus[False]), statistics.median(cpus[True])
    n_params = cnn(x.shape[1:], 4, seed=0, conv_filters=filters, dense_units=args.dense_units)
    print(
        f"{args.n_samples} samples {args.image_size}px, filters {filters}, dense "
        f"{args.dense_units} ({n_params.count_params()} parameters), {args.epochs} epochs, "
        f"batch {args.batch_size}: without {plain:.3f} s, with {rec:.3f} s (medians of "
        f"{args.repeats}: {[round(t, 3) for t in times[False]]} vs "
        f"{[round(t, 3) for t in times[True]]}): {100 * (rec / plain - 1):+.1f}%; CPU time "
        f"{cpu_plain:.3f} s vs {cpu_rec:.3f} s ({[round(t, 3) for t in cpus[False]]} vs "
        f"{[round(t, 3) for t in cpus[True]]}): {100 * (cpu_rec / cpu_plain - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()

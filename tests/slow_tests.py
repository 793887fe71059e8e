"""The tests marked `slow` (by tests/conftest.py), left out of the quick subset:

    python -m pytest -n auto --dist loadgroup -m "not slow"

The full run (the README's test command, CI) runs them all. A test is slow when it takes
several seconds on a 2-core CPU and repeats what a quicker test checks for every loss and
backend: end-to-end runs (the demo, the benchmarks, the docs build), worker processes
(DDP, vocabulary parallel, the 8-device JAX runs), long property searches and the
exhaustive parametrisations. The large grids of every loss × option × backend keep a
fixed sample in the quick subset (:data:`SAMPLED`). Measured on a quiet 2-core machine
with `-n 2`: the quick subset 1,223 tests in 54 s, the full run 8 min 2 s.
"""

from __future__ import annotations

import zlib

SLOW: tuple[str, ...] = (
    # End-to-end runs: the demo, `multiloss check`, the benchmark suite, the docs build and
    # the docs' examples, the sdist build, ruff and mypy over the tree, the Flax example.
    "tests/test_cli.py::test_demo_runs_end_to_end",
    "tests/test_cli.py::test_check_passes_and_lists_versions",
    "tests/test_cli.py::test_every_run_has_its_own_progress_label",
    "tests/test_cli.py::test_torch_trains_at_one_thread",
    "tests/test_benchmarks.py",
    "tests/test_docs.py",
    "tests/test_packaging.py",
    "tests/test_style.py",
    "tests/test_jax_example.py",
    "tests/test_detection_example.py",
    # Worker processes and multi-device runs.
    "tests/test_torch_ddp.py",
    "tests/test_torch_vocab_parallel.py",
    "tests/test_jax_vocab_parallel.py",
    "tests/test_jax_sharding.py",
    "tests/test_jax_linear.py",
    # Searches and exhaustive grids: hypothesis properties, mpmath accuracy bounds,
    # second derivatives, gradcheck/OpInfo, every operand's gradient, the peers' parity,
    # the chunked and linear-head plans, the global normaliser in every variant.
    "tests/test_core_properties.py",
    "tests/test_core_accuracy.py",
    "tests/test_core_second_order.py",
    "tests/test_core_edges.py",
    "tests/test_operand_gradients.py",
    "tests/test_jax_derivatives.py",
    "tests/test_torch_opinfo.py",
    "tests/test_torch_autograd.py",
    "tests/test_parity.py",
    "tests/test_global_normalizer.py",
    "tests/test_torch_linear.py",
    "tests/test_numpy_linear.py",
    "tests/test_torch_plans.py",
    "tests/test_torch_chunked.py",
    # The detection losses' second-order checks (JAX's check_grads compiles every order).
    "tests/test_detection_losses.py::test_jax_check_grads_to_second_order",
    "tests/test_detection_losses.py::test_gradcheck_and_gradgradcheck",
)
"""Node-id prefixes: a test whose node id starts with one of them is slow. What stays in
the quick subset touches every loss in every backend: values against the oracles
(test_core_values, test_torch_values, test_jax_values, test_numpy_reference,
test_new_losses, test_core_references, test_core_oracles), the errors (test_core_bad_input,
test_jax_errors, test_torch_migration_errors), the modules, the dispatch, the class
weights, the imports, the promises of the README (test_user_promises) and the doctests."""


SLOW_NAMES: tuple[str, ...] = (
    # torch.compile and JAX compilations of whole programs: seconds each, tens of seconds
    # on a loaded machine (the eager and jitted values stay in the quick subset).
    "compiled",
    "compilation",
    "test_captured_concrete_weight_works_under_jit_scan_and_checkpoint",
    "test_jax_refuses_labels_too_large_for_int32_without_x64",
    "test_checkpoint_scan_and_shard_map",
    "test_vmap_matches_a_loop",
    "test_checked_turns_run_time_value_errors_into_exceptions",
    # Second-order and finite-difference sweeps (the first-order values stay quick).
    "test_jax_check_grads_order_2",
    "test_torch_gradcheck_and_gradgradcheck",
    "test_jax_check_grads_to_order_two_on_bin_edges",
    "test_gradcheck_and_gradgradcheck_with_targets_on_bin_edges",
    "test_softcap_against_jax_grad_of_optax_on_capped_logits",
    # Fresh interpreters (imports measured from scratch).
    "test_torch_and_jax_backends_are_lazy_attributes",
    # The doctests of the sharded and fused-head JAX functions (device meshes, chunks).
    "multiloss/jax/distributed.py::",
    "multiloss/jax/linear.py::",
    "multiloss/torch/distributed.py::",
    # Triton's whole compile pipeline for an sm_80 GPU in a subprocess (7 s)
    "tests/test_triton_distribution.py::test_kernels_compile_for_a_gpu",
)
"""Substrings of node ids: a test whose node id contains one of them is slow."""


SAMPLED: tuple[str, ...] = (
    "tests/test_core_values.py",
    "tests/test_core_bad_input.py",
    "tests/test_torch_values.py",
    "tests/test_new_losses.py",
    "tests/test_triton_sigmoid.py",
    "tests/test_variant_bad_input.py",
    "tests/test_numpy_reference.py",
    "tests/test_core_references.py",
    "tests/test_jax_errors.py",
    "tests/test_triton_softmax.py",
    "tests/test_confident_rows.py",
    "tests/test_pallas.py",
    "tests/test_jax_values.py",
    "tests/test_schedules.py",
    "tests/test_detection_losses.py",
    "tests/test_distribution_focal.py",
    "tests/test_triton_distribution.py",
)
"""The large grids of every loss × option × backend: the quick subset keeps a fixed
1-in-`SAMPLE` share of each (chosen by a hash of the test id, the same in every run),
which still holds every loss in every backend; the full run keeps them all."""

SAMPLE = 8

QUICK_SLOW: tuple[str, ...] = (
    # Whole files that repeat, at more cost, what the sampled grids check.
    "tests/test_hf.py",
    "tests/test_triton_variants.py",
    "tests/test_imports.py",
    "tests/test_cli.py::test_demo",
    "tests/test_cli.py::test_every_run",
    "tests/test_cli.py::test_torch_trains",
)


def is_slow(nodeid: str) -> bool:
    if nodeid.startswith(SLOW + QUICK_SLOW) or any(name in nodeid for name in SLOW_NAMES):
        return True
    return nodeid.startswith(SAMPLED) and zlib.crc32(nodeid.encode()) % SAMPLE != 0

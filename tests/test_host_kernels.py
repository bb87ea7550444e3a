"""Every CPU kernel family this machine can run gives the same layer outputs (within fp32
rounding) as the generic family, and all of them match transformers, including reduction lengths
that are not a multiple of the vector width. Each test runs every family itself: nothing is
shared between tests, so the result does not depend on which tests ran before."""

from __future__ import annotations

import numpy as np
import pytest
import transformers  # noqa: F401  (the references need it: a missing one fails collection)
from helpers.contract import decode_feed, prefill_feed
from helpers.host_kernels import host_kernel, host_kernel_family
from helpers.tiny_models import TinyConfig, layer_reference, make_model, save_model

import axllm
from axllm.build import BuildOptions, build

REFERENCE = "generic"  # portable C++, runs everywhere
VECTOR_FAMILIES = ["avx512", "avx2"]
# bf16 weights vs transformers' fp32: loose. Families vs each other: the same bf16 weights and
# fp32 accumulation in a different order, so far tighter.
VS_TRANSFORMERS = 0.05
VS_REFERENCE = 1e-4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    cfg = TinyConfig(
        "qwen2", hidden_size=72, num_heads=3, num_kv_heads=1, head_dim=24, intermediate_size=100, seed=9
    )
    model = make_model(cfg)
    ckpt = save_model(model, tmp_path_factory.mktemp("k") / "hf")
    out = build(
        ckpt,
        tmp_path_factory.mktemp("kb"),
        BuildOptions(prefill_len=8, kv_cache_len=24, hidden_state_type="fp32", weight_type="bf16"),
    )
    return cfg, model, out


def run_family(family: str, path, prefill: dict, decode: dict) -> dict[str, np.ndarray] | None:
    """The layer's outputs for a prefill of 7 tokens and one decode step, computed with kernel
    family ``family`` by a session opened under it; None if this CPU cannot run the family."""
    with host_kernel_family(family) as selected:
        if not selected:
            return None
        assert host_kernel() == family
        sess = axllm.InferenceSession(path)
        k, v, y = sess.run(None, prefill, shape_group=1)
        kd, vd, yd = sess.run(None, decode, shape_group=0)
    return {
        "prefill_k": k[:, :7],
        "prefill_v": v[:, :7],
        "prefill_y": y[:, :7],
        "decode_k": kd,
        "decode_v": vd,
        "decode_y": yd,
    }


def test_every_kernel_family_matches_generic_and_transformers(model_dir):
    cfg, model, out = model_dir
    path = out / "qwen2_p8_l0_together.hostmodel"
    rng = np.random.default_rng(0)
    embeds = rng.standard_normal((13, cfg.hidden_size)).astype(np.float32)
    ref = layer_reference(model, embeds)
    probe = axllm.InferenceSession(path)
    prefill = prefill_feed(probe, 1, ref.inputs[0][:7], ref.keys[0], ref.values[0], 0, np.float32, rng)
    decode = decode_feed(probe, ref.inputs[0][12], ref.keys[0], ref.values[0], 12, np.float32, rng)
    del probe

    before = host_kernel()
    generic = run_family(REFERENCE, path, prefill, decode)
    assert generic is not None, "the generic kernels must run on every CPU"
    results = {REFERENCE: generic}
    for family in VECTOR_FAMILIES:
        got = run_family(family, path, prefill, decode)
        if got is not None:
            results[family] = got
    assert host_kernel() == before, "the kernel family in use was not restored"

    for family, got in results.items():
        assert np.max(np.abs(got["prefill_y"][0] - ref.outputs[0][:7])) < VS_TRANSFORMERS, family
        assert np.max(np.abs(got["decode_y"][0, 0] - ref.outputs[0][12])) < VS_TRANSFORMERS, family
        for name, expected in generic.items():
            diff = np.max(np.abs(got[name] - expected))
            assert diff < VS_REFERENCE, f"{family} vs {REFERENCE}: {name} differs by {diff}"
    print("kernel families compared with generic:", sorted(set(results) - {REFERENCE}) or "none")

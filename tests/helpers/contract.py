"""Feeds for one group run built exactly per the axmodel contract (additive mask, 0 = attend,
-65536 = blocked; absolute positions in ``indices``), independent of the code under test."""

from __future__ import annotations

import numpy as np

BLOCKED = -65536.0


def blocked(dtype) -> float:
    """The blocked mask value in ``dtype``: -65536 (bf16/fp32), fp16's lowest finite for fp16."""
    return float(np.finfo(np.float16).min) if np.dtype(dtype) == np.float16 else BLOCKED


def decode_feed(sess, ref_layer_input_row, keys, values, pos, dtype, rng):
    """Group 0 at position ``pos``: history rows 0..pos-1 from ``keys``/``values``; other rows
    hold garbage that the mask must hide."""
    ins = {i.name: i for i in sess.get_inputs(0)}
    c = ins["K_cache"].shape[1]
    d = ins["K_cache"].shape[2]
    k_cache = rng.standard_normal((1, c, d)).astype(np.float32) * 3
    v_cache = rng.standard_normal((1, c, d)).astype(np.float32) * 3
    k_cache[0, :pos] = keys[:pos]
    v_cache[0, :pos] = values[:pos]
    mask = np.full((1, 1, c + 1), blocked(dtype), np.float32)
    mask[0, 0, :pos] = 0
    mask[0, 0, c] = 0
    return {
        "input": ref_layer_input_row.reshape(1, 1, -1).astype(dtype),
        "indices": np.array([[pos]], np.uint32),
        "mask": mask.astype(dtype),
        "K_cache": k_cache.astype(dtype),
        "V_cache": v_cache.astype(dtype),
    }


def prefill_feed(sess, group, rows, keys, values, history, dtype, rng):
    """A prefill group run of len(rows) valid tokens after ``history`` cached positions; padding
    rows are random and fully blocked; unused history rows are garbage."""
    ins = {i.name: i for i in sess.get_inputs(group)}
    p = ins["input"].shape[1]
    h = ins["input"].shape[2]
    width = ins["mask"].shape[2]
    cap = width - p
    n = len(rows)
    x = rng.standard_normal((1, p, h)).astype(np.float32)
    x[0, :n] = rows
    kc_shape = ins["K_cache"].shape
    k_cache = rng.standard_normal(kc_shape).astype(np.float32) * 3
    v_cache = rng.standard_normal(kc_shape).astype(np.float32) * 3
    if history:
        k_cache[0, :history] = keys[:history]
        v_cache[0, :history] = values[:history]
    mask = np.full((1, p, width), blocked(dtype), np.float32)
    for r in range(n):
        mask[0, r, :history] = 0
        mask[0, r, cap : cap + r + 1] = 0
    indices = np.zeros((1, p), np.uint32)
    indices[0, :n] = np.arange(history, history + n)
    return {
        "input": x.astype(dtype),
        "indices": indices,
        "mask": mask.astype(dtype),
        "K_cache": k_cache.astype(dtype),
        "V_cache": v_cache.astype(dtype),
    }

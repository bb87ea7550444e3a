"""``InferenceSession``: the low-level, pyaxengine-shaped API over one engine model file.

Works on any model an engine can load (a software-NPU ``.hostmodel`` layer or post model today).
Tensors are matched by name within a shape group; shapes and dtypes must match exactly (no silent
casting). bf16 tensors travel as ``ml_dtypes.bfloat16`` arrays. The GIL is released while the
engine runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from axllm import _core
from axllm.errors import ClosedError

_NUMPY_DTYPES = {
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "uint32": np.dtype(np.uint32),
    "int32": np.dtype(np.int32),
    "uint8": np.dtype(np.uint8),
    "int8": np.dtype(np.int8),
}


@dataclass(frozen=True)
class NodeArg:
    """One tensor of a shape group: ``name``, ``shape`` (tuple), ``dtype`` (numpy dtype)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


class InferenceSession:
    """A model file loaded by an engine; ``run`` executes one shape group.

    ``close()`` (or leaving a ``with`` block) frees the engine model and every buffer at once;
    any use after that raises :class:`axllm.ClosedError`.

    >>> with InferenceSession("qwen2_p128_l0_together.hostmodel") as sess:
    ...     [i.name for i in sess.get_inputs(shape_group=1)]
    ['K_cache', 'V_cache', 'indices', 'input', 'mask']
    """

    def __init__(self, path: str | os.PathLike[str], providers: str | Sequence[str] | None = None):
        path = os.fspath(path)
        backend = _select_backend(path, providers)
        self._path = path
        self._session = _core.InferenceSession(path, backend)
        self._groups = [self._describe(g) for g in range(self._session.num_groups)]

    def close(self) -> None:
        """Free the engine model and every buffer now (waits for a ``run`` in progress on
        another thread). Idempotent."""
        self._session.close()

    @property
    def closed(self) -> bool:
        return self._session.closed

    def __enter__(self) -> InferenceSession:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The model file (readable after close, for messages)."""
        return self._path

    @property
    def num_groups(self) -> int:
        self._check_open()
        return len(self._groups)

    def get_inputs(self, shape_group: int = 0) -> list[NodeArg]:
        return list(self._group(shape_group)[0])

    def get_outputs(self, shape_group: int = 0) -> list[NodeArg]:
        return list(self._group(shape_group)[1])

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, np.ndarray],
        run_options: object = None,
        shape_group: int = 0,
    ) -> list[np.ndarray]:
        """Run ``shape_group`` on ``input_feed`` and return the named outputs (all if ``None``).

        Raises ``ValueError`` for an unknown, missing or misshapen input, an unknown output or an
        out-of-range group, and ``TypeError`` for an input of the wrong dtype.
        """
        del run_options
        if not isinstance(input_feed, Mapping):
            raise TypeError("input_feed must be a mapping of input name to numpy array")
        _, outputs = self._group(shape_group)
        by_name = {o.name: o for o in outputs}
        if output_names is None:
            names = [o.name for o in outputs]
        else:
            if isinstance(output_names, str):
                raise TypeError("output_names must be a sequence of names or None, not a string")
            names = list(output_names)
            for n in names:
                if n not in by_name:
                    raise ValueError(
                        f"{n!r} is not an output of shape_group {shape_group} (outputs: {', '.join(by_name)})"
                    )
        feeds = []
        for name, value in input_feed.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"input {name!r} must be a numpy array, got {type(value).__name__}")
            feeds.append((name, np.ascontiguousarray(value)))
        results = [np.empty(by_name[n].shape, by_name[n].dtype) for n in names]
        self._session.run(shape_group, feeds, list(zip(names, results)))
        return results

    def _check_open(self) -> None:
        if self._session.closed:
            raise ClosedError(f"{self._path} is closed")

    def _group(self, shape_group: int) -> tuple[list[NodeArg], list[NodeArg]]:
        self._check_open()
        if isinstance(shape_group, bool) or not isinstance(shape_group, (int, np.integer)):
            raise TypeError(f"shape_group must be an int, got {type(shape_group).__name__}")
        if not 0 <= shape_group < len(self._groups):
            raise ValueError(
                f"shape_group={shape_group} is out of range: {self.path} has "
                f"{len(self._groups)} shape group(s)"
            )
        return self._groups[shape_group]

    def _describe(self, g: int) -> tuple[list[NodeArg], list[NodeArg]]:
        inputs, outputs = self._session.group_io(g)

        def args(specs):
            return [NodeArg(n, tuple(s), _NUMPY_DTYPES[d], b) for n, s, d, b in specs]

        return args(inputs), args(outputs)


def _select_backend(path: str, providers: str | Sequence[str] | None) -> str:
    """pyaxengine provider names map to axllm backends; None picks by the file (auto)."""
    if providers is None:
        return "auto"
    names = (
        [providers]
        if isinstance(providers, str)
        else [p[0] if isinstance(p, tuple) else p for p in providers]
    )
    known = {
        "host": "host",
        "CPUExecutionProvider": "host",
        "AxllmHostProvider": "host",
        "ax": "ax",
        "AxEngineExecutionProvider": "ax",
        "axcl": "axcl",
        "AXCLRTExecutionProvider": "axcl",
    }
    for name in names:
        if name in known:
            return known[name]
    raise ValueError(f"no usable provider in {names!r} for {path} (known: {', '.join(known)})")

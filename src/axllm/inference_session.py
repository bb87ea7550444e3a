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

    ``path`` is the model file; ``providers`` is None (pick the engine by the file), a backend
    name (``"host"``, ``"ax"``, ``"axcl"``) or pyaxengine provider names
    (``"AxEngineExecutionProvider"``, ``"AXCLRTExecutionProvider"``, ``"CPUExecutionProvider"``
    for the host engine), the first known one used.

    ``close()`` (or leaving a ``with`` block) frees the engine model and every buffer at once;
    any use after that raises :class:`axllm.ClosedError` (``path`` and ``closed`` stay readable).

    Raises ModelLoadError (a missing, truncated or malformed file, named; its subclass
    UnsupportedModelError for an unknown architecture; a backend that cannot run the file),
    EngineError (an NPU runtime that fails), ValueError (no known provider in ``providers``).

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
        another thread). Idempotent. Raises nothing."""
        self._session.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called. Raises nothing."""
        return self._session.closed

    def __enter__(self) -> InferenceSession:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The model file (readable after close, for messages). Raises nothing."""
        return self._path

    @property
    def num_groups(self) -> int:
        """How many shape groups the model has (decode, prefill, prefill with history...).
        Raises ClosedError."""
        self._check_open()
        return len(self._groups)

    def get_inputs(self, shape_group: int = 0) -> list[NodeArg]:
        """The inputs of ``shape_group`` (name, shape, dtype, bytes), in the model's order.
        Raises ValueError (a group out of range), TypeError (a group that is not an int),
        ClosedError."""
        return list(self._group(shape_group)[0])

    def get_outputs(self, shape_group: int = 0) -> list[NodeArg]:
        """The outputs of ``shape_group``, in the order ``run(None, ...)`` returns them. Raises
        ValueError (a group out of range), TypeError (a group that is not an int), ClosedError."""
        return list(self._group(shape_group)[1])

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, np.ndarray],
        run_options: object = None,
        shape_group: int = 0,
    ) -> list[np.ndarray]:
        """Run ``shape_group`` on ``input_feed`` and return the named outputs (all if ``None``),
        as new numpy arrays. ``run_options`` is accepted for pyaxengine compatibility and ignored.
        The GIL is released while the engine runs; concurrent runs on one session are serialized.

        Raises ``ValueError`` for an unknown, missing or misshapen input, an unknown output or an
        out-of-range group; ``TypeError`` for an input of the wrong dtype, a feed that is not a
        mapping of numpy arrays, ``output_names`` given as one string, or a group that is not an
        int; ``ClosedError`` after ``close()``; ``EngineError`` when an NPU runtime fails.
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

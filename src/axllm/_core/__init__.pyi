"""
axllm native core: engines, inference sessions, the sampler and the LLM runtime
"""

from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
from . import _testing

__all__: list[str] = [
    "AxllmError",
    "BusyError",
    "ClosedError",
    "ContextOverflowError",
    "EngineError",
    "Generation",
    "GenerationConfig",
    "InferenceSession",
    "LLM",
    "MODEL_OVERRIDE_KEYS",
    "ModelLoadError",
    "Sampler",
    "Step",
    "UnsupportedModelError",
    "get_log_level",
    "set_log_level",
    "set_log_sink",
]

class AxllmError(RuntimeError):
    """
    Base class of axllm's runtime errors.
    """

class ModelLoadError(AxllmError):
    """
    A model file is missing, truncated, malformed or inconsistent.
    """

class UnsupportedModelError(ModelLoadError):
    """
    The model's architecture or kind is not supported.
    """

class EngineError(AxllmError):
    """
    An engine or vendor call failed; .function and .code tell which and how.
    """

    code: typing.ClassVar[int] = 0
    function: typing.ClassVar[str] = ""

class BusyError(AxllmError):
    """
    A call on a model while another thread runs one on it (axllm.LLM serializes its calls).
    """

class ClosedError(AxllmError):
    """
    A model or session was used after close(); the message names its path.
    """

class InferenceSession:
    """
    One engine model with a buffer per tensor per shape group.
    """
    def __init__(self, path: str, backend: str = "auto") -> None: ...
    def close(self) -> None:
        """
        Free the engine model and every buffer now; later calls raise ClosedError.
        """
    def group_io(self, shape_group: typing.SupportsInt | typing.SupportsIndex) -> tuple[list, list]:
        """
        ([(name, shape, dtype, bytes)] inputs, [...] outputs) of a shape group.
        """
    def run(
        self,
        shape_group: typing.SupportsInt | typing.SupportsIndex,
        feeds: collections.abc.Sequence[tuple[str, numpy.ndarray]],
        outputs: collections.abc.Sequence[tuple[str, numpy.ndarray]],
    ) -> None:
        """
        Copy feeds in, run the group with the GIL released, copy outputs into the given arrays.
        """
    @property
    def closed(self) -> bool: ...
    @property
    def num_groups(self) -> int: ...
    @property
    def path(self) -> str: ...

class Sampler:
    """
    Next-token sampler over a logits vector (mode 'hf': transformers' processors; mode 'vendor': AXERA post_config.json semantics).
    """
    def __init__(self, **kwargs) -> None:
        """
        Sampler(*, mode='hf', temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, seed=None,
                enable_top_p=False, enable_top_k=False, penalty_window=20)
        Keyword arguments only; an omitted or None one keeps its default. Raises ValueError
        naming a bad value, TypeError naming an unknown parameter or one of the wrong type.
        """
    def probabilities(
        self,
        logits: typing.Any,
        prompt: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
        generated: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        The float32 [vocab] distribution sample() draws from (one-hot when greedy).
        """
    def sample(
        self,
        logits: typing.Any,
        prompt: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
        generated: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
    ) -> int:
        """
        Picks the next token id from float32 logits [vocab].
        """
    @property
    def params(self) -> dict:
        """
        The parameters as a dict (seed None when unseeded).
        """

class GenerationConfig:
    """
    What one generate()/chat() call asks for: sampling, length, stop strings, overflow policy.

    GenerationConfig(**options): keyword arguments only, each a field below; an unknown name or a
    wrong type is a TypeError, a value out of range a ValueError, both naming the field. An unset
    (None) sampling field means the model's default: with no sampling field set, the model's own
    sampling applies (post_config.json, else generation_config.json, else greedy); with any set,
    transformers' semantics apply with exactly those fields. Assigning a field validates it.
    """

    __hash__: typing.ClassVar[None] = None
    fields: typing.ClassVar[dict] = {
        "max_new_tokens": "int",
        "temperature": "float",
        "top_k": "int",
        "top_p": "float",
        "min_p": "float",
        "repetition_penalty": "float",
        "presence_penalty": "float",
        "frequency_penalty": "float",
        "seed": "int",
        "stop": "list[str]",
        "overflow": "str",
    }
    def __copy__(self) -> GenerationConfig: ...
    def __deepcopy__(self, memo: dict) -> GenerationConfig: ...
    def __eq__(self, arg0: typing.Any) -> typing.Any: ...
    def __getstate__(self) -> dict: ...
    def __init__(self, **kwargs) -> None: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, arg0: dict) -> None: ...
    def replace(self, **kwargs) -> GenerationConfig:
        """
        A copy with the given fields changed (validated).
        """
    def to_dict(self) -> dict:
        """
        Every field and its value (None where unset).
        """
    @property
    def frequency_penalty(self) -> float | None:
        """
        OpenAI's frequency penalty (finite; 0 is off).
        """
    @frequency_penalty.setter
    def frequency_penalty(self, arg1: float | None) -> None: ...
    @property
    def has_sampling(self) -> bool:
        """
        Whether any sampling field is set (then the model's sampling defaults do not apply).
        """
    @property
    def max_new_tokens(self) -> int | None:
        """
        Tokens to generate at most (>= 1); None: until EOS or a full context.
        """
    @max_new_tokens.setter
    def max_new_tokens(self, arg1: int | None) -> None: ...
    @property
    def min_p(self) -> float | None:
        """
        Drop tokens below min_p x the top probability, in [0, 1].
        """
    @min_p.setter
    def min_p(self, arg1: float | None) -> None: ...
    @property
    def overflow(self) -> typing.Literal["error", "truncate_left", "drop_oldest_turns"]:
        """
        A prompt longer than the context: 'error' (ContextOverflowError), 'truncate_left' (drop its oldest tokens) or 'drop_oldest_turns' (chat: drop the oldest turns).
        """
    @overflow.setter
    def overflow(
        self, arg1: typing.Literal["error", "truncate_left", "drop_oldest_turns"] | None
    ) -> None: ...
    @property
    def presence_penalty(self) -> float | None:
        """
        OpenAI's presence penalty (finite; 0 is off).
        """
    @presence_penalty.setter
    def presence_penalty(self, arg1: float | None) -> None: ...
    @property
    def repetition_penalty(self) -> float | None:
        """
        transformers' repetition penalty (> 0; 1 is off).
        """
    @repetition_penalty.setter
    def repetition_penalty(self, arg1: float | None) -> None: ...
    @property
    def seed(self) -> int | None:
        """
        Seed of the sampler's generator, in [0, 2**64); None: random.
        """
    @seed.setter
    def seed(self, arg1: int | None) -> None: ...
    @property
    def stop(self) -> list[str]:
        """
        Stop strings (at most 16, non-empty): the text ends before the first one generated.
        """
    @stop.setter
    def stop(self, arg1: str | collections.abc.Iterable[str] | None) -> None: ...
    @property
    def temperature(self) -> float | None:
        """
        Sampling temperature (>= 0; 0 is greedy).
        """
    @temperature.setter
    def temperature(self, arg1: float | None) -> None: ...
    @property
    def top_k(self) -> int | None:
        """
        Keep the k most probable tokens (>= 0; 0 keeps all).
        """
    @top_k.setter
    def top_k(self, arg1: int | None) -> None: ...
    @property
    def top_p(self) -> float | None:
        """
        Nucleus sampling mass, in (0, 1].
        """
    @top_p.setter
    def top_p(self, arg1: float | None) -> None: ...

class ContextOverflowError(AxllmError):
    """
    The prompt (and what must follow it) does not fit the context; .needed, .available.
    """

    available: typing.ClassVar[int] = 0
    needed: typing.ClassVar[int] = 0

class Step:
    """
    What one Generation step did: a prefill chunk (progress), a token, or the finish.
    """
    def __repr__(self) -> str: ...
    @property
    def finish_reason(self) -> str | None:
        """
        None while the generation goes on; else why it finished.
        """
    @property
    def prefill_done(self) -> int:
        """
        Prompt tokens prefilled so far (0 on steps that ran no prefill chunk).
        """
    @property
    def prefill_total(self) -> int:
        """
        Prompt tokens to prefill (the prompt minus the reused prefix); 0 on steps that ran no prefill chunk.
        """
    @property
    def stop_token(self) -> int:
        """
        The EOS id sampled (finish 'stop'), or -1.
        """
    @property
    def token(self) -> int:
        """
        The token sampled, or -1.
        """

class Generation:
    """
    One generation, advanced a step at a time by next().
    """
    def __iter__(self) -> typing.Any: ...
    def __next__(self) -> Step:
        """
        Runs one step (GIL released) and returns its Step; StopIteration once a finish has been returned.
        """
    def cancel(self) -> None:
        """
        Cancel at the next chunk, layer or step boundary (any thread).
        """
    def run_steps(self, n: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        Run up to n steps in C++ without returning to Python (for benchmarks).
        """
    @property
    def finish_reason(self) -> str | None: ...
    @property
    def metrics(self) -> dict: ...
    @property
    def prompt(self) -> list[int]: ...
    @property
    def tokens(self) -> list[int]: ...

class LLM:
    """
    A loaded pulsar2-shaped model (the C++ runtime).
    """
    def __init__(
        self,
        path: str,
        backend: str = "auto",
        overrides: dict = {},
        progress: collections.abc.Callable[[int, int], None] | None = None,
        devices: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
    ) -> None: ...
    def close(self) -> None:
        """
        Cancel any generation and free every engine model and buffer; later calls raise ClosedError.
        """
    def extend(self, tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        """
        Prefill tokens after the cached ones without sampling.
        """
    def fit_prompt(
        self,
        prompt: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
        config: GenerationConfig,
    ) -> list[int]:
        """
        The prompt checked and fitted per config.overflow; ContextOverflowError when it cannot fit.
        """
    def generate(
        self,
        prompt: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
        config: GenerationConfig | None = None,
        reuse_kv: bool = True,
    ) -> Generation:
        """
        Start a generation over token ids under config (None: the defaults); iterate it (each
        __next__ runs one step and returns a Step).
        """
    def pin_prefix(self, n: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Keep the first n cached tokens across reset().
        """
    def prompt_limit(self, config: GenerationConfig) -> int:
        """
        Prompt tokens a generation under config accepts (its overflow policy's limit).
        """
    def reset(self) -> None:
        """
        Empty the KV cache.
        """
    def restore(
        self,
        tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
        k: collections.abc.Sequence[bytes],
        v: collections.abc.Sequence[bytes],
        pinned: typing.SupportsInt | typing.SupportsIndex = 0,
    ) -> None:
        """
        Replace the cache with these tokens and rows, the first `pinned` of them pinned.
        """
    def rewind(self, n: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Drop the last n cached tokens (not below the pinned prefix).
        """
    def set_defaults(
        self, eos_ids: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], sampling: dict
    ) -> None:
        """
        Set the EOS ids and the sampling used when a config sets no sampling field (a dict as Sampler takes).
        """
    def snapshot(self) -> tuple[list[int], list, list, int]:
        """
        (tokens, [K rows per layer], [V rows per layer], pinned) of the cache, read under one lock.
        """
    def stop(self) -> None:
        """
        Cancel the running generation from any thread.
        """
    @property
    def backend(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def default_sampling(self) -> dict: ...
    @property
    def eos_ids(self) -> list[int]: ...
    @property
    def files(self) -> dict: ...
    @property
    def geometry(self) -> dict: ...
    @property
    def kv_size(self) -> int: ...
    @property
    def kv_tokens(self) -> list[int]: ...
    @property
    def pinned_prefix(self) -> int: ...

def _log(level: typing.SupportsInt | typing.SupportsIndex, message: str) -> None:
    """
    Emit a record through the native sink (for tests).
    """

def get_log_level() -> int: ...
def set_log_level(level: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Drop native records below this logging level (10 debug .. 40 error).
    """

def set_log_sink(sink: typing.Any) -> None:
    """
    Route native log records to sink(level: int, message: str); None restores stderr.
    """

MODEL_OVERRIDE_KEYS: tuple = (
    "template_filename_axmodel",
    "axmodel_num",
    "filename_post_axmodel",
    "filename_tokens_embed",
    "tokens_embed_num",
    "tokens_embed_size",
)

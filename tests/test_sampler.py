"""The native token sampler (axllm._core.Sampler).

Mode "hf": probabilities() must equal the distribution transformers' own processors produce when
applied in generate()'s order (repetition penalty, then temperature, top-k, top-p, min-p), with
OpenAI-style presence/frequency penalties after the repetition penalty. Mode "vendor": an
independent NumPy re-implementation of AXERA's post_config.json semantics.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import transformers  # noqa: F401
from transformers.generation.logits_process import (  # noqa: E402
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from axllm._core import Sampler  # noqa: E402

QWEN_VOCAB = 151936
# A Qwen-sized vocabulary: seconds per case against transformers, so in the slow set only.
QWEN_VOCAB_SLOW = pytest.param(QWEN_VOCAB, id=str(QWEN_VOCAB), marks=pytest.mark.slow)


def f32(x: float) -> float:
    """The float32 value the sampler stores, as a Python float, so both sides use one number."""
    return float(np.float32(x))


def hf_reference(
    logits: np.ndarray,
    prompt: list[int],
    generated: list[int],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (probabilities, ranking scores): transformers' processors in generate()'s order.

    The ranking scores are the scores after penalties and temperature, before any filtering:
    tokens with equal ranking scores are interchangeable at a top-p cut, since torch.sort is not
    stable beyond 16 elements."""
    vocab = logits.shape[0]
    scores = torch.from_numpy(logits.copy())[None]
    ids = torch.tensor([list(prompt) + list(generated)], dtype=torch.long)
    if repetition_penalty != 1.0 and ids.numel():
        scores = RepetitionPenaltyLogitsProcessor(f32(repetition_penalty))(ids, scores)
    if presence_penalty or frequency_penalty:
        gen = torch.tensor([t for t in generated if t < vocab], dtype=torch.long)
        counts = torch.bincount(gen, minlength=vocab).to(torch.float32)[None]
        scores = scores - torch.tensor(f32(frequency_penalty)) * counts
        scores = scores - torch.tensor(f32(presence_penalty)) * (counts > 0).to(torch.float32)
    if temperature <= 0:
        out = np.zeros(vocab, np.float32)
        out[int(torch.argmax(scores[0]))] = 1.0
        return out, scores[0].numpy()
    # generate() adds each warper only when it is active (temperature != 1, top_k != 0, top_p < 1).
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(f32(temperature))(ids, scores)
    ranking = scores[0].numpy().copy()
    if top_k != 0:
        scores = TopKLogitsWarper(top_k=top_k)(ids, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p=f32(top_p))(ids, scores)
    if min_p > 0.0:
        scores = MinPLogitsWarper(min_p=f32(min_p))(ids, scores)
    return torch.softmax(scores[0], dim=-1).numpy(), ranking


def assert_same_distribution(
    ours: np.ndarray, ref: np.ndarray, ranking: np.ndarray, *, loose_cut: bool = False
) -> None:
    """Equal up to a permutation among tokens of equal ranking score (a tie group cut by top-p
    may keep different members); everywhere else equal position by position.

    loose_cut: transformers' float32 softmax and cumsum drift by ~1e-5 of mass over 10**5
    tokens, so when tokens carry less than that each (very high temperatures), the last few at
    the top-p cut may fall on either side. Then only a set of differing tokens holding < 1e-4 of
    the mass in total is allowed."""
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.isclose(ours.sum(), 1.0, atol=1e-5)
    a = np.lexsort((ours, ranking))
    b = np.lexsort((ref, ranking))
    x, y = ours[a], ref[b]
    # Same support, except where a probability underflows on one side only.
    differ = ((x > 0) != (y > 0)) & (np.maximum(x, y) >= 1e-30)
    if loose_cut and differ.any():
        assert np.maximum(x, y)[differ].sum() < 1e-4
        assert 0.5 * np.abs(x.astype(np.float64) - y).sum() < 2e-4
        return
    assert not differ.any(), f"{int(differ.sum())} tokens kept on one side only"
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-9)


def random_logits(rng: np.random.Generator, vocab: int, kind: str) -> np.ndarray:
    x = rng.normal(0.0, 3.0, vocab).astype(np.float32)
    if kind == "ties":
        x = np.round(x * 2.0) / 2.0  # few distinct values: many ties everywhere
    elif kind == "masked":
        x[rng.random(vocab) < 0.3] = -np.inf
        x[rng.integers(vocab)] = 1.0  # at least one finite score
    elif kind == "peaked":
        x[rng.integers(vocab)] += 25.0
    return x.astype(np.float32)


def ours(logits, prompt=(), generated=(), **params) -> np.ndarray:
    return Sampler(seed=0, **params).probabilities(logits, list(prompt), list(generated))


HF_GRID = {
    "temperature": [0.02, 0.7, 1.0, 1.3, 80.0],
    "top_k": [0, 1, 3, 40, 10**6],
    "top_p": [1.0, 0.95, 0.5, 1e-6],
    "min_p": [0.0, 0.05, 0.4],
}


@pytest.mark.parametrize("vocab", [2, 7, 16, 100, 1000, QWEN_VOCAB_SLOW])
def test_hf_filters_match_transformers(vocab):
    rng = np.random.default_rng(vocab)
    combos = list(itertools.product(*HF_GRID.values()))
    picked = combos if vocab <= 100 else [combos[i] for i in rng.choice(len(combos), 60, False)]
    for i, (temperature, top_k, top_p, min_p) in enumerate(picked):
        kind = ["normal", "ties", "masked", "peaked"][i % 4]
        logits = random_logits(rng, vocab, kind)
        params = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
        ref, ranking = hf_reference(logits, [], [], **params)
        try:
            assert_same_distribution(ours(logits, **params), ref, ranking, loose_cut=vocab > 1000)
        except AssertionError as e:
            raise AssertionError(f"vocab {vocab} {kind} {params}: {e}") from None


@pytest.mark.parametrize("vocab", [4, 9, 16])
def test_hf_tie_order_matches_transformers_exactly(vocab):
    """Up to 16 elements torch.sort is stable, so transformers' top-p keeps the higher index of
    equal scores; the sampler uses that rule at every size."""
    rng = np.random.default_rng(100 + vocab)
    for _ in range(200):
        logits = rng.integers(-2, 3, vocab).astype(np.float32)
        params = dict(
            temperature=float(rng.choice([0.5, 1.0, 2.0])),
            top_k=int(rng.choice([0, 1, 2, 5])),
            top_p=float(rng.choice([0.1, 0.3, 0.5, 0.75, 0.9])),
            min_p=float(rng.choice([0.0, 0.2])),
        )
        ref, _ = hf_reference(logits, [], [], **params)
        np.testing.assert_allclose(
            ours(logits, **params), ref, rtol=1e-5, atol=1e-7, err_msg=f"{logits} {params}"
        )


def test_hf_uniform_top_p_keeps_highest_indices():
    logits = np.zeros(4, np.float32)
    np.testing.assert_allclose(ours(logits, top_p=0.5), [0, 0, 0.5, 0.5])
    ref, _ = hf_reference(logits, [], [], top_p=0.5)
    np.testing.assert_allclose(ref, [0, 0, 0.5, 0.5])


@pytest.mark.parametrize("vocab", [10, 1000, QWEN_VOCAB_SLOW])
def test_hf_penalties_match_transformers(vocab):
    rng = np.random.default_rng(7 * vocab)
    for i in range(24):
        logits = random_logits(rng, vocab, ["normal", "ties", "masked"][i % 3])
        prompt = [int(t) for t in rng.integers(0, vocab, rng.integers(0, 40))]
        generated = [int(t) for t in rng.integers(0, min(vocab, 30), rng.integers(0, 25))]
        if i % 4 == 0:
            generated += generated[:5] + [vocab - 1, vocab + 3]  # duplicates; an id past the vocab
            prompt += [vocab, vocab - 1]
        params = dict(
            temperature=float(rng.choice([0.0, 0.6, 1.0, 1.7])),
            top_k=int(rng.choice([0, 20])),
            top_p=float(rng.choice([1.0, 0.9])),
            min_p=float(rng.choice([0.0, 0.1])),
            repetition_penalty=float(rng.choice([1.0, 1.3, 0.7, 2.5])),
            presence_penalty=float(rng.choice([0.0, 0.5, -0.4])),
            frequency_penalty=float(rng.choice([0.0, 0.3, 1.1])),
        )
        ref, ranking = hf_reference(logits, prompt, generated, **params)
        got = ours(logits, prompt, generated, **params)
        try:
            if params["temperature"] <= 0:
                np.testing.assert_array_equal(got, ref)
            else:
                assert_same_distribution(got, ref, ranking, loose_cut=vocab > 1000)
        except AssertionError as e:
            raise AssertionError(f"vocab {vocab} case {i} {params}: {e}") from None


def test_hf_greedy():
    logits = np.array([0.5, 2.0, -1.0, 2.0, 1.5], np.float32)
    s = Sampler(temperature=0.0)
    assert s.sample(logits, [], []) == 1  # lowest index among equal maxima, as torch.argmax
    np.testing.assert_array_equal(s.probabilities(logits, [], []), [0, 1, 0, 0, 0])
    # 2.0 / 2 for the seen ids 1 and 3, so 1.5 wins.
    assert Sampler(temperature=0.0, repetition_penalty=2.0).sample(logits, [1], [3, 3]) == 4
    # Greedy ignores the filters, as generate() does without do_sample.
    assert Sampler(temperature=0.0, top_k=1, top_p=0.1, min_p=0.9).sample(logits, [], []) == 1


def test_same_seed_same_sequence():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, QWEN_VOCAB).astype(np.float32)

    def run(**kw):
        s = Sampler(temperature=0.9, top_k=200, top_p=0.95, repetition_penalty=1.1, **kw)
        out: list[int] = []
        for _ in range(40):
            out.append(s.sample(logits, [1, 2, 3], out))
        return out

    assert run(seed=1234) == run(seed=1234)
    assert run(seed=1234) != run(seed=1235)
    assert run() != run()  # unseeded samplers draw from std::random_device
    v = dict(mode="vendor", temperature=1.0, enable_top_p=True, top_p=0.99)
    a, b = Sampler(seed=9, **v), Sampler(seed=9, **v)
    assert [a.sample(logits) for _ in range(30)] == [b.sample(logits) for _ in range(30)]


def test_samples_follow_probabilities():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1.5, 30).astype(np.float32)
    s = Sampler(temperature=0.8, top_k=10, top_p=0.9, seed=5)
    p = s.probabilities(logits, [], [])
    n = 20000
    counts = np.bincount([s.sample(logits, [], []) for _ in range(n)], minlength=30)
    assert np.all(counts[p == 0] == 0)
    kept = p > 0
    chi2 = float((((counts[kept] - n * p[kept]) ** 2) / (n * p[kept])).sum())
    df = max(1, int(kept.sum()) - 1)
    assert chi2 < df + 6 * np.sqrt(2 * df) + 10


def test_params_dict():
    s = Sampler(
        mode="vendor", temperature=0.5, enable_top_k=True, top_k=10, penalty_window=8, repetition_penalty=1.2
    )
    assert s.params == {
        "mode": "vendor",
        "temperature": 0.5,
        "top_k": 10,
        "top_p": 1.0,
        "min_p": 0.0,
        "repetition_penalty": f32(1.2),
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": None,
        "enable_top_p": False,
        "enable_top_k": True,
        "penalty_window": 8,
    }
    assert Sampler(seed=2**64 - 1).params["seed"] == 2**64 - 1
    with pytest.raises(AttributeError):
        s.params = {}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=float("nan")), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(top_k=2**40), "top_k"),
        (dict(min_p=-0.1), "min_p"),
        (dict(min_p=1.5), "min_p"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(repetition_penalty=-1.0), "repetition_penalty"),
        (dict(presence_penalty=float("inf")), "presence_penalty"),
        (dict(frequency_penalty=float("nan")), "frequency_penalty"),
        (dict(mode="greedy"), "mode"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**64), "seed"),
        (dict(enable_top_p=True), "enable_top_p"),
        (dict(enable_top_k=True), "enable_top_k"),
        (dict(penalty_window=5), "penalty_window"),
        (dict(mode="vendor", min_p=0.1), "min_p"),
        (dict(mode="vendor", presence_penalty=0.5), "presence_penalty"),
        (dict(mode="vendor", frequency_penalty=0.5), "frequency_penalty"),
        (dict(mode="vendor", enable_top_k=True, top_k=0), "top_k"),
        (dict(mode="vendor", penalty_window=-1), "penalty_window"),
        (dict(mode="vendor", penalty_window=2**40), "penalty_window"),
    ],
)
def test_bad_params_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        Sampler(**kwargs)


def test_top_p_message():
    with pytest.raises(ValueError, match=r"^top_p must be in \(0, 1\], got 1\.5$"):
        Sampler(top_p=1.5)


def test_bad_call_arguments():
    s = Sampler(temperature=1.0, seed=0)
    good = np.zeros(5, np.float32)
    with pytest.raises(TypeError, match="float32"):
        s.sample(np.zeros(5, np.float64))
    with pytest.raises(TypeError, match="numpy"):
        s.sample([0.0, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        s.sample(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="^logits"):
        s.sample(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="^logits.*NaN"):
        s.sample(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="^logits"):
        s.sample(np.full(3, -np.inf, np.float32))
    with pytest.raises(ValueError, match="^prompt"):
        s.sample(good, [-1], [])
    with pytest.raises(ValueError, match="^generated"):
        s.probabilities(good, [], [0, -3])
    strided = np.arange(10, dtype=np.float32)[::2]  # not contiguous: copied
    assert Sampler(temperature=0.0).sample(strided) == 4


def vendor_reference(
    logits: np.ndarray,
    generated: list[int],
    *,
    temperature: float,
    repetition_penalty: float,
    penalty_window: int,
    enable_top_p: bool,
    top_p: float,
    enable_top_k: bool,
    top_k: int,
) -> np.ndarray:
    """AXERA post_config.json semantics, from their description, in NumPy."""
    vocab = logits.shape[0]
    s = logits.astype(np.float32).copy()
    if temperature > 0:
        s = (s / np.float32(temperature)).astype(np.float32)
    if repetition_penalty != 1.0 and penalty_window > 0:
        root = np.sqrt(np.float32(repetition_penalty))
        for t in set(generated[-penalty_window:]):
            if t < vocab:
                s[t] = s[t] / root if s[t] > 0 else s[t] * root
    out = np.zeros(vocab, np.float64)
    order = np.lexsort((np.arange(vocab), -s.astype(np.float64)))  # score down, index up
    if temperature > 0 and enable_top_p:
        p = np.exp(s.astype(np.float64) - s.max())
        p /= p.sum()
        cumulative, kept = 0.0, []
        for t in order:
            if cumulative >= f32(top_p):
                break
            kept.append(t)
            cumulative += p[t]
        out[kept] = p[kept] / p[kept].sum()
    elif temperature > 0 and enable_top_k and top_k > 1:
        kept = order[: min(top_k, vocab)]
        e = np.exp(s[kept].astype(np.float64) - s[kept].max())
        out[kept] = e / e.sum()
    else:
        out[int(np.argmax(s))] = 1.0
    return out


@pytest.mark.parametrize("vocab", [5, 300, QWEN_VOCAB_SLOW])
def test_vendor_matches_reference(vocab):
    rng = np.random.default_rng(vocab + 11)
    selection = [
        dict(),
        dict(enable_top_p=True, top_p=0.1),
        dict(enable_top_p=True, top_p=0.8),
        dict(enable_top_p=True, top_p=1.0),
        dict(enable_top_k=True, top_k=1),
        dict(enable_top_k=True, top_k=2),
        dict(enable_top_k=True, top_k=10),
        dict(enable_top_k=True, top_k=vocab + 5),
        dict(enable_top_p=True, top_p=0.5, enable_top_k=True, top_k=3),
    ]
    n = 0
    for sel, temperature, rp, window in itertools.product(
        selection, [0.0, 0.5, 1.0, 2.0], [1.0, 1.2, 0.8], [0, 1, 5, 20]
    ):
        if vocab == QWEN_VOCAB and rng.random() < 0.85:
            continue  # a sample of the grid at the full vocab size
        n += 1
        logits = random_logits(rng, vocab, ["normal", "ties", "peaked"][n % 3])
        generated = [int(t) for t in rng.integers(0, min(vocab, 8), 12)] + [vocab + 1]
        params = dict(
            temperature=temperature,
            repetition_penalty=rp,
            penalty_window=window,
            enable_top_p=False,
            top_p=1.0,
            enable_top_k=False,
            top_k=0,
        )
        params.update(sel)
        ref = vendor_reference(logits, generated, **params)
        got = Sampler(mode="vendor", seed=0, **params).probabilities(logits, [0, 1, 2], generated)
        try:
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-9)
            assert np.all((got > 1e-6) == (ref > 1e-6))
        except AssertionError as e:
            raise AssertionError(f"vocab {vocab} {params}: {e}") from None
    assert n > 0


def test_vendor_by_hand():
    # [4, 6, -2, 5] / 2 = [2, 3, -1, 2.5]; penalty 4 (sqrt 2) on the last two generated {1, 2}:
    # [2, 1.5, -2, 2.5]. The prompt (id 3) is not penalized.
    logits = np.array([4, 6, -2, 5], np.float32)
    base = dict(mode="vendor", temperature=2.0, repetition_penalty=4.0, penalty_window=2)
    assert Sampler(**base).sample(logits, [3], [0, 1, 2]) == 3
    e = np.exp(np.array([2.0, 2.5]) - 2.5)
    np.testing.assert_allclose(
        Sampler(enable_top_k=True, top_k=2, **base).probabilities(logits, [3], [0, 1, 2]),
        [e[0] / e.sum(), 0, 0, e[1] / e.sum()],
        rtol=1e-6,
    )
    # top_k 1 is greedy and never draws.
    assert Sampler(enable_top_k=True, top_k=1, **base).sample(logits, [3], [0, 1, 2]) == 3
    # softmax [2, 1.5, -2, 2.5] = [.306, .185, .006, .504]: top_p .7 keeps 3, then 0 (.809 >= .7).
    p = np.exp(np.array([2, 1.5, -2, 2.5]) - 2.5)
    p /= p.sum()
    got = Sampler(enable_top_p=True, top_p=0.7, **base).probabilities(logits, [3], [0, 1, 2])
    np.testing.assert_allclose(got, [p[0] / (p[0] + p[3]), 0, 0, p[3] / (p[0] + p[3])], rtol=1e-6)


def test_bad_parameter_types_and_names_raise_type_error_naming_them():
    with pytest.raises(TypeError, match="^temperature must be a number"):
        Sampler(temperature="hot")
    with pytest.raises(TypeError, match="^top_k must be an int"):
        Sampler(top_k="3")
    with pytest.raises(TypeError, match="^mode must be"):
        Sampler(mode=1)
    with pytest.raises(TypeError, match="unknown sampling parameter 'topk'"):
        Sampler(topk=3)
    with pytest.raises(TypeError):
        Sampler(0.5)
    assert Sampler(temperature=None, top_k=None).params == Sampler().params


def test_bools_are_not_numbers_and_ints_are_integral():
    for kwargs, match in (
        (dict(top_k=True), "^top_k must be an int"),
        (dict(temperature=True), "^temperature"),
        (dict(enable_top_k=0.0), "^enable_top_k must be a bool"),
        (dict(penalty_window=2.5), "^penalty_window must be an int"),
        (dict(seed=1.5), "^seed must be an int"),
        (dict(seed=True), "^seed must be an int"),
    ):
        with pytest.raises(TypeError, match=match):
            Sampler(**kwargs)
    with pytest.raises(ValueError, match=r"^penalty_window must fit in int32"):
        Sampler(mode="vendor", penalty_window=2**70)
    assert Sampler(top_k=np.int64(3), temperature=np.float32(0.5)).params["top_k"] == 3

"""Drafted decoding is exact: drafts change how many forward passes a reply takes, never the reply.

The hand-written decoders (GPT-2 and Llama) on tiny random models, against decoding without drafts
and against HF's own forward; then the shipped models on prompts of every built-in task.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from maker.backends.base import SampleRequest  # noqa: E402
from maker.backends.drafting import Drafter, ReplyMemory  # noqa: E402
from maker.backends.hf_decode import Group, decode, make_decoder  # noqa: E402
from tests.backends.test_llama_decode import PROMPTS, hf_next_logits, tiny_model  # noqa: E402

VOCAB = 64


class CharTokenizer:
    """A codec where token i is the character chr(48 + i): enough for the task hook's text. Characters
    past the model's vocabulary come out as ids it does not have (which a draft must never feed it)."""

    def decode(self, ids):
        return "".join(chr(48 + i) for i in ids)

    def encode(self, text):
        return [ord(c) - 48 for c in text]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    torch.set_num_threads(1)
    if request.param == "llama":
        return tiny_model("Llama", num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_layer=2, n_embd=64, n_head=4, n_positions=128,
                                     initializer_range=0.2, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


def run(model, groups, drafter=None, seed=0, eos=frozenset({0})):
    with torch.inference_mode():
        return decode(make_decoder(model), PROMPTS, groups, eos=eos, generator=torch.Generator().manual_seed(seed),
                      drafter=drafter)


def guessing_drafter(memory_replies=(), hook=None):
    """A drafter that knows some replies (right or wrong) and, through ``hook``, guesses others."""
    memory = ReplyMemory()
    texts = [f"prompt {i}" for i in range(len(PROMPTS))]
    for prompt, reply in memory_replies:
        memory.add(texts[prompt], reply)
    return Drafter(PROMPTS, texts, CharTokenizer(), memory, max_tokens=8)


def groups_at(temperature, n=3, cap=14, seeded=True):
    return [Group(i, n, temperature, cap, torch.Generator().manual_seed(100 + i) if seeded else None)
            for i in range(len(PROMPTS))]


def test_greedy_replies_are_the_same_with_and_without_drafts(model):
    plain, finish, passes = run(model, groups_at(0.0))
    # Drafts from every source: the right reply for prompt 0, a wrong one for prompt 1 that agrees
    # for a while, prompt lookup elsewhere.
    right, wrong = plain[0], plain[3][:3] + [(t + 1) % VOCAB for t in plain[3][3:]]
    drafter = guessing_drafter([(0, right), (1, wrong)])
    drafted, drafted_finish, drafted_passes = run(model, groups_at(0.0), drafter)
    assert drafted == plain and drafted_finish == finish
    assert drafter.stats["drafted"] > drafter.stats["draft_accepted"] > 0  # some drafts taken, some refused
    assert drafted_passes <= passes
    assert run(model, groups_at(0.0), guessing_drafter([(p, plain[3 * p]) for p in range(len(PROMPTS))]))[2] < passes


def test_sampled_replies_are_the_same_for_the_same_seed_with_and_without_drafts(model):
    plain, finish, _ = run(model, groups_at(1.0))
    drafter = guessing_drafter([(i, plain[3 * i]) for i in range(len(PROMPTS))])  # the first sample of each prompt
    drafted, drafted_finish, _ = run(model, groups_at(1.0), drafter)
    assert drafted == plain and drafted_finish == finish
    assert drafter.stats["draft_accepted"] > 0
    assert run(model, groups_at(1.0))[0] == plain  # and a seed means the same replies again
    other = [Group(g.prompt, g.n, g.temperature, g.max_tokens, torch.Generator().manual_seed(7 + g.prompt)) for g in groups_at(1.0)]
    assert run(model, other)[0] != plain  # another seed, other replies: the test could fail


def test_the_task_hook_drafts_from_the_reply_so_far_and_never_changes_it(model):
    """A hook that guesses the greedy reply's next characters from the text so far (wrong at one place)."""
    plain, _, passes = run(model, groups_at(0.0, n=1))
    calls = []

    def hook_for(prompt):
        want = CharTokenizer().decode(plain[prompt])

        def hook(so_far):
            calls.append(so_far)
            guess = want[:5] + "~" + want[6:]  # "~" is no token of the model's: the draft stops before it
            return guess[len(so_far):] if guess.startswith(so_far) and len(guess) > len(so_far) else None

        return hook

    groups = [Group(i, 1, 0.0, 14, None, hook_for(i)) for i in range(len(PROMPTS))]
    drafter = Drafter(PROMPTS, [f"p{i}" for i in range(len(PROMPTS))], CharTokenizer(), None, max_tokens=8, vocab=VOCAB)
    drafted, _, drafted_passes = run(model, groups, drafter)
    assert drafted == plain
    assert calls and drafted_passes < passes


def test_drafted_sampling_draws_from_the_model_distribution(model):
    """The first two tokens of 6,000 samples of one prompt, the second drafted from a fixed guess that
    is sometimes right (the first comes from the prefill; a third is drawn so that the second can be
    drafted): a chi-square test against the model's own joint probabilities (from HF's
    forward). A drafted position drawn from anything but the model would fail it."""
    torch.manual_seed(0)
    prompt = PROMPTS[0]
    with torch.inference_mode():
        first = torch.softmax(hf_next_logits(model, [prompt])[0], -1)
        likely = first.argsort(descending=True)[:3].tolist()
        second = {a: torch.softmax(hf_next_logits(model, [prompt + [a]])[0], -1) for a in likely}
    guess = [likely[0], int(second[likely[0]].argmax())]
    memory = ReplyMemory()
    memory.add("p", guess + [1, 2, 3])
    drafter = Drafter([prompt], ["p"], CharTokenizer(), memory, max_tokens=4)
    n = 6000
    with torch.inference_mode():
        out, _, _ = decode(make_decoder(model), [prompt], [Group(0, n, 1.0, 3, torch.Generator().manual_seed(5))],
                           eos=frozenset(), generator=torch.Generator(), drafter=drafter)
    assert drafter.stats["draft_accepted"] > 300
    counts = Counter(tuple(row[:2]) for row in out)
    cells = {(a, b): float(first[a] * second[a][b]) for a in likely for b in second[a].argsort(descending=True)[:3].tolist()}
    expected = [n * p for p in cells.values()]
    observed = [counts[c] for c in cells]
    rest_expected, rest_observed = n - sum(expected), n - sum(observed)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True)) + (rest_observed - rest_expected) ** 2 / rest_expected
    # 9 cells + the rest: 9 degrees of freedom; P(chi2 > 27.9) = 0.001.
    assert chi2 < 27.9, (chi2, observed, expected)


def test_a_rejected_draft_leaves_the_cache_as_if_it_had_never_been_written(model):
    counts = [2, 1, 1, 1]
    with torch.inference_mode():
        decoder = make_decoder(model)
        drafted, _ = decoder.prefill(PROMPTS, counts)
        rows = sum(counts)
        first = torch.arange(rows) + 3
        drafts = torch.randint(0, VOCAB, (rows, 4), generator=torch.Generator().manual_seed(1))
        drafted.extend(torch.cat([first[:, None], drafts], 1), [5, 3, 5, 1, 2])
        drafted.accept([1, 2, 1, 1, 2])  # rows 1 and 4 keep one draft token; the rest is rejected
        after = drafted.extend(torch.full((rows, 1), 7))[:, 0]
        kept = [[int(first[r])] + drafts[r, : k - 1].tolist() for r, k in enumerate([1, 2, 1, 1, 2])]
        owners = [o for o, c in enumerate(counts) for _ in range(c)]
        want = hf_next_logits(model, [PROMPTS[o] + k + [7] for o, k in zip(owners, kept, strict=True)])
        assert (after - want).abs().max() < 1e-4
        # The same tokens fed one at a time, no draft ever written: the same cache, column for column.
        plain = make_decoder(model)
        session, _ = plain.prefill(PROMPTS, counts)
        for column in range(2):
            session.extend(torch.tensor([[k[column] if column < len(k) else 0] for k in kept]))
            session.accept([int(column < len(k)) for k in kept])
        plain_kv = session.gkv.clone()
    for r, k in enumerate(kept):
        assert torch.allclose(drafted.gkv[:, :, r, :, : len(k)], plain_kv[:, :, r, :, : len(k)], atol=1e-5)


def test_an_opening_draft_runs_in_the_prefill_and_each_row_keeps_its_own_part(model):
    """Prompts prefilled with a draft of their replies' start: the logits after the prompt and after
    each draft token are HF's, and once rows of one prompt keep different numbers of draft tokens,
    each row continues as if only its kept tokens had ever been written."""
    counts = [3, 1, 2, 1]
    owners = [o for o, c in enumerate(counts) for _ in range(c)]
    gen = torch.Generator().manual_seed(6)
    drafts = [torch.randint(1, VOCAB, (n,), generator=gen).tolist() for n in (4, 0, 2, 3)]
    with torch.inference_mode():
        session, logits = make_decoder(model).prefill(PROMPTS, counts, drafts)
        assert logits.shape[:2] == (len(owners), 5)
        for r, o in enumerate(owners):
            want = hf_next_logits(model, [PROMPTS[o] + drafts[o][:j] for j in range(len(drafts[o]) + 1)])
            assert (logits[r, : len(drafts[o]) + 1] - want).abs().max() < 1e-4
            assert not logits[r, len(drafts[o]) + 1 :].any()  # past a short draft: zero padding
        kept = [4, 0, 2, 0, 1, 2, 3]  # prompt 0's three rows keep all, none and half of its draft
        session.accept(kept)
        sequences = [PROMPTS[o] + drafts[o][:k] for o, k in zip(owners, kept, strict=True)]
        for _ in range(3):
            tokens = torch.randint(1, VOCAB, (len(owners),), generator=gen)
            for sequence, token in zip(sequences, tokens.tolist(), strict=True):
                sequence.append(token)
            assert (session.step(tokens) - hf_next_logits(model, sequences)).abs().max() < 1e-4
    with pytest.raises(RuntimeError, match="accept first"), torch.inference_mode():
        make_decoder(model).prefill(PROMPTS, counts, drafts)[0].step(torch.zeros(len(owners), dtype=torch.long))


def test_rows_that_share_their_tokens_are_computed_once_and_still_match_hf(model):
    """Three samples of each prompt fed the same tokens for a while, then different ones: every row's
    logits are HF's at every step, before and after they part."""
    counts = [3, 3, 1, 3]
    owners = [o for o, c in enumerate(counts) for _ in range(c)]
    sequences = [list(PROMPTS[o]) for o in owners]
    gen = torch.Generator().manual_seed(4)
    with torch.inference_mode():
        session, logits = make_decoder(model).prefill(PROMPTS, counts)
        logits = logits[:, 0]  # after each prompt (no opening drafts: one position)
        for step in range(6):
            assert (logits - hf_next_logits(model, sequences)).abs().max() < 1e-4
            shared = torch.randint(0, VOCAB, (len(counts),), generator=gen)
            own = torch.randint(0, VOCAB, (len(owners),), generator=gen)
            tokens = own if step >= 3 else shared[owners]  # together for three steps, then apart
            for sequence, token in zip(sequences, tokens.tolist(), strict=True):
                sequence.append(token)
            logits = session.step(tokens)
        assert (logits - hf_next_logits(model, sequences)).abs().max() < 1e-4


def test_a_session_refuses_to_go_on_once_a_newer_one_took_its_workspace(model):
    with torch.inference_mode():
        decoder = make_decoder(model)
        old, _ = decoder.prefill(PROMPTS, [1] * len(PROMPTS))
        decoder.prefill(PROMPTS, [1] * len(PROMPTS))
        with pytest.raises(RuntimeError, match="newer session"):
            old.step(torch.zeros(len(PROMPTS), dtype=torch.long))


# --- the shipped models on every built-in task ----------------------------------------------------
def _task_prompts(name, count, **params):
    from maker.loading import load_task

    task = load_task(name, **params)
    states = task.training_states(random.Random(3), count)
    return task, states


@pytest.mark.parametrize("name, params, faster", [("hanoi", {"disks": 12}, True), ("multiply", {"digits": 8}, False)])
def test_the_shipped_models_reply_the_same_with_and_without_drafts(name, params, faster):
    """Random states of each built-in task (its training states: not one trajectory), greedy and
    sampled, through ``HFBackend`` with and without drafting: the same replies, token for token.
    Hanoi's hook drafts most of each reply; multiplication's replies ("digit = 6, carry = 1") are
    not in their prompt, so its drafts (prompt lookup) are refused, and only cost time."""
    from maker.backends.hf import HFBackend
    from maker.engine import draft_hook

    task, states = _task_prompts(name, 24, **params)
    chains = [(task, s) for s in states]  # multiplication's training states hold product and sum digit steps
    model = task.default_model

    async def replies(draft):
        backend = HFBackend(str(model), num_threads=1, draft=draft)
        try:
            requests = []
            for i, (step_task, state) in enumerate(chains):
                hook = draft_hook(step_task, state)
                cap = step_task.run_defaults().get("max_tokens", 64)
                requests += [SampleRequest(step_task.prompt(state), 1, 0.0, cap, 1 + i, step_task.agent, hook),
                             SampleRequest(step_task.prompt(state), 3, 1.0, cap, 100 + i, step_task.agent, hook)]
            return await backend.sample_many(requests), backend.statistics()
        finally:
            await backend.aclose()

    plain, plain_stats = asyncio.run(replies(0))
    drafted, stats = asyncio.run(replies(32))
    assert [[s.text for s in r] for r in drafted] == [[s.text for s in r] for r in plain]
    assert stats["drafted"] > 0
    if faster:
        assert stats["draft_accepted"] > stats["drafted"] / 2 and stats["forward_passes"] < plain_stats["forward_passes"] / 2


@pytest.mark.parametrize("fast", [True, False])
def test_a_row_that_ends_at_the_last_position_waits_for_the_others_without_running_past_it(fast):
    """A row capped at the model's last position finishes first and stays in the batch (fewer than a
    quarter of the rows are done): it must not be fed at a position the model does not have."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_layer=1, n_embd=32, n_head=2, n_positions=24,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    prompts = [list(range(1, 16)), [3, 4]]
    groups = [Group(0, 1, 0.0, 24 - 15), Group(1, 7, 1.0, 22 - 2, torch.Generator().manual_seed(1))]
    with torch.inference_mode():
        out, finish, _ = decode(make_decoder(model, fast), prompts, groups, eos=frozenset(), generator=torch.Generator())
    assert [len(o) for o in out] == [9] + [20] * 7 and set(finish) == {"length"}


def test_a_hook_that_raises_is_no_guess_and_fails_nothing(model):
    plain, _, _ = run(model, groups_at(0.0, n=1))

    def broken(so_far):
        raise ValueError("a hook with a bug")

    groups = [Group(i, 1, 0.0, 14, None, broken) for i in range(len(PROMPTS))]
    drafter = Drafter(PROMPTS, [f"p{i}" for i in range(len(PROMPTS))], CharTokenizer(), None, max_tokens=8)
    assert run(model, groups, drafter)[0] == plain

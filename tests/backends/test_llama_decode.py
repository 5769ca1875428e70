"""The hand-written Llama/Qwen2 decoder against HF's own forward on tiny random models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from maker.backends import kv_session  # noqa: E402
from maker.backends.hf_decode import Group, decode, make_decoder  # noqa: E402
from maker.backends.llama_decode import LlamaDecoder  # noqa: E402

VOCAB, MAX_NEW, TOLERANCE = 64, 12, 1e-4
PROMPTS = [[5, 9, 13, 2, 40, 33, 7, 19], [11], [8, 21, 3], [60, 1, 17, 29, 44]]  # different lengths: a padded batch
SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=128, initializer_range=0.2)  # 0.2: varied greedy replies, not one repeated token
CASES = {
    "llama-gqa-tied": ("Llama", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "llama-mha-untied": ("Llama", dict(num_key_value_heads=4, tie_word_embeddings=False,
                                       rope_parameters={"rope_type": "default", "rope_theta": 500.0})),
    # One key/value head for four queries, biases everywhere, heads wider than hidden_size / heads.
    "llama-biases-mqa": ("Llama", dict(num_key_value_heads=1, tie_word_embeddings=False, attention_bias=True,
                                       mlp_bias=True, head_dim=32)),
    "qwen2-gqa": ("Qwen2", dict(num_key_value_heads=2)),
}


def tiny_model(family: str, seed: int = 0, **settings):
    """A random float32 ``{family}ForCausalLM`` with SMALL's sizes, its biases random too (HF zeroes them)."""
    torch.manual_seed(seed)
    config = getattr(transformers, f"{family}Config")(**{**SMALL, **settings})
    model = getattr(transformers, f"{family}ForCausalLM")(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.2)
    return model


@pytest.fixture(scope="module", params=list(CASES))
def model(request):
    torch.set_num_threads(1)
    family, settings = CASES[request.param]
    return tiny_model(family, **settings)


def hf_next_logits(model, sequences: list[list[int]]) -> torch.Tensor:
    """HF's next-token logits for each whole sequence, one plain forward each (no cache, no padding)."""
    with torch.inference_mode():
        return torch.stack([model(input_ids=torch.tensor([s])).logits[0, -1] for s in sequences])


def hf_greedy(model, prompt: list[int], steps: int) -> list[int]:
    sequence = list(prompt)
    for _ in range(steps):
        sequence.append(int(hf_next_logits(model, [sequence])[0].argmax()))
    return sequence[len(prompt) :]


def owners_of(counts: list[int]) -> list[int]:
    return [o for o, c in enumerate(counts) for _ in range(c)]


def test_make_decoder_picks_the_llama_decoder_unless_told_not_to(model):
    assert LlamaDecoder.supports(model)
    assert make_decoder(model).kind == "llama"
    assert make_decoder(model, fast=False).kind == "hf"


def test_greedy_decode_matches_hf_token_for_token(model):
    """n greedy samples per prompt, rows stopping at EOS at different steps, one group capped early:
    every row is HF's greedy continuation, through the Llama decoder and through HF's decoder."""
    free = [hf_greedy(model, p, MAX_NEW) for p in PROMPTS]
    # An EOS that the first prompt's reply reaches but some other reply never does: both finish reasons.
    eos = next(t for t in free[0] if any(t not in reply for reply in free[1:]))
    expected = [reply[: reply.index(eos)] if eos in reply else reply for reply in free]
    groups = [Group(i, 1 + i % 3, 0.0, MAX_NEW) for i in range(len(PROMPTS))] + [Group(3, 2, 0.0, 3)]
    capped = [(expected[g.prompt][: g.max_tokens], g.max_tokens) for g in groups for _ in range(g.n)]
    want = [reply for reply, _ in capped]
    reasons = ["length" if len(reply) == cap else "stop" for reply, cap in capped]
    assert {"stop", "length"} <= set(reasons) and min(map(len, want)) < max(map(len, want))
    for fast in (True, False):
        with torch.inference_mode():
            decoder = make_decoder(model, fast)
            out, finish, passes = decode(decoder, PROMPTS, groups, eos=frozenset({eos}), generator=torch.Generator())
        assert out == want
        assert finish == reasons
        assert passes == max(len(w) + (r == "stop") for w, r in zip(want, reasons, strict=True))


def test_prefill_and_step_logits_match_hf(model):
    """Uneven samples per prompt, each row fed its own tokens, past the first growth of the cache."""
    counts = [2, 1, 3, 1]
    sequences = [list(PROMPTS[o]) for o in owners_of(counts)]
    tokens = torch.Generator().manual_seed(7)
    with torch.inference_mode():
        session, logits = make_decoder(model).prefill(PROMPTS, counts)
        logits = logits[:, 0]  # after each prompt (no opening drafts: one position)
        for _ in range(kv_session._GROW + 2):
            assert (logits - hf_next_logits(model, sequences)).abs().max() < TOLERANCE
            step = torch.randint(0, VOCAB, (len(sequences),), generator=tokens)
            for sequence, token in zip(sequences, step.tolist(), strict=True):
                sequence.append(token)
            logits = session.step(step)
    assert (logits - hf_next_logits(model, sequences)).abs().max() < TOLERANCE
    assert session.gkv.shape[4] > kv_session._GROW  # the generated block grew, and kept what it held


def test_select_keeps_the_right_rows(model):
    """Rows dropped mid-decode (a whole prompt, single samples of others): the survivors' next
    logits are still HF's, and a second drop down to uneven counts still is."""
    counts = [2, 3, 1, 2]
    sequences = [list(PROMPTS[o]) for o in owners_of(counts)]
    tokens = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        session, logits = make_decoder(model).prefill(PROMPTS, counts)
        logits = logits[:, 0]  # after each prompt (no opening drafts: one position)
        for keep in (None, None, [0, 2, 4, 6, 7], None, [1, 2, 4], None):
            if keep is not None:
                session.select(keep)
                sequences = [sequences[r] for r in keep]
                logits = logits[keep]
            assert (logits - hf_next_logits(model, sequences)).abs().max() < TOLERANCE
            step = torch.randint(0, VOCAB, (len(sequences),), generator=tokens)
            for sequence, token in zip(sequences, step.tolist(), strict=True):
                sequence.append(token)
            logits = session.step(step)
    assert (logits - hf_next_logits(model, sequences)).abs().max() < TOLERANCE


@pytest.mark.parametrize("family, settings", [
    ("Llama", dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
    ("Llama", dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})),
    ("Qwen2", dict(use_sliding_window=True, sliding_window=8, max_window_layers=0)),
], ids=["linear-rope", "dynamic-rope", "sliding-window"])
def test_what_it_cannot_run_exactly_falls_back_to_hf(family, settings):
    model = tiny_model(family, num_key_value_heads=2, **settings)
    assert not LlamaDecoder.supports(model)
    assert make_decoder(model).kind == "hf"


def test_half_precision_and_other_models_fall_back_to_hf():
    assert not LlamaDecoder.supports(tiny_model("Llama", num_key_value_heads=2).to(torch.bfloat16))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=VOCAB, n_layer=1, n_embd=32, n_head=2))
    assert not LlamaDecoder.supports(gpt2)


# peft 0.21 reads a property transformers 5 deprecates: its warning, not ours.
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_a_peft_adapter_falls_back_to_hf():
    peft = pytest.importorskip("peft")
    model = tiny_model("Llama", num_key_value_heads=2)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert make_decoder(wrapped).kind == "hf"
    assert not LlamaDecoder.supports(model)  # the adapted layers inside, too

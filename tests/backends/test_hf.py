"""The in-process transformers backend against HF ``generate`` on a tiny random GPT-2."""

from __future__ import annotations

import asyncio
import string

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from maker.backends.base import Sample, SampleRequest  # noqa: E402
from maker.backends.hf import HFBackend  # noqa: E402
from maker.backends.hf_decode import Group, decode, make_decoder  # noqa: E402
from maker.errors import BackendError, ConfigError  # noqa: E402

EOS, PAD = 1, 0
PROMPTS = [  # different lengths, so the batch is left-padded
    "cw prev = none state = [[3, 2, 1], [], []]\n",
    "move = [1, 0, 2]\n",
    "ab",
    "x",
    "next_state = [[2], [1], []]",
    "hello world 42",
]
MAX_NEW = 20


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A character-level tokenizer and a random 2-layer GPT-2, saved like a real checkpoint."""
    torch.set_num_threads(1)
    vocab = {"<pad>": PAD, "<eos>": EOS, "<unk>": 2}
    for c in string.ascii_lowercase + string.digits + "[], =_\n":
        vocab[c] = len(vocab)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), behavior="isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(1)
    config = transformers.GPT2Config(  # initializer_range 0.2: varied replies rather than one repeated character
        vocab_size=len(vocab), n_layer=2, n_embd=64, n_head=2, n_positions=128, initializer_range=0.2,
        bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # a louder EOS, so that some greedy replies stop early and others run long
        model.transformer.wte.weight[EOS] *= 3.0
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(model_dir):
    """Greedy replies of HF ``generate`` (token ids, EOS and padding removed) for PROMPTS."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True, padding_side="left")
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=EOS, pad_token_id=PAD)
    replies = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        replies.append(row[: row.index(EOS)] if EOS in row else row)
    lengths = [len(r) for r in replies]
    assert min(lengths) < MAX_NEW and max(lengths) == MAX_NEW, "the fixture should give both finish reasons"
    return {"ids": replies, "model": model, "tokenizer": tok}


def backend(model_dir, **settings) -> HFBackend:
    return HFBackend(model_dir, num_threads=1, **settings)


@pytest.mark.parametrize("fast", [True, False])
def test_decode_matches_generate_token_for_token(reference, fast):
    model, tok = reference["model"], reference["tokenizer"]
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    groups = [Group(i, 1, 0.0, MAX_NEW) for i in range(len(PROMPTS))]
    decoder = make_decoder(model, fast)
    assert decoder.kind == ("gpt2" if fast else "hf")
    with torch.inference_mode():
        out, finish, passes = decode(decoder, prompts, groups, eos=frozenset({EOS}), generator=torch.Generator())
    assert out == reference["ids"]
    assert finish == ["length" if len(r) == MAX_NEW else "stop" for r in reference["ids"]]
    assert passes == MAX_NEW


def test_shared_prompts_with_uneven_samples_match_the_plain_forward(reference):
    """Greedy and seeded samples of several prompts, 1 to 4 per prompt, in one batch: the GPT-2
    decoder (prompt cache shared by a prompt's samples, rows dropped as they finish) and HF's own
    forward (one cache row per sample) give the same tokens, and every greedy row is generate's."""
    model, tok = reference["model"], reference["tokenizer"]
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    results = []
    for fast in (True, False):
        groups = []
        for i in range(len(PROMPTS)):
            groups.append(Group(i, 1, 0.0, MAX_NEW))
            groups.append(Group(i, i % 4, 1.0, MAX_NEW, torch.Generator().manual_seed(i)))
        groups = [g for g in groups if g.n]
        with torch.inference_mode():
            results.append(decode(make_decoder(model, fast), prompts, groups, eos=frozenset({EOS}), generator=torch.Generator()))
        out = results[-1][0]
        greedy_rows = [sum(g.n for g in groups[:k]) for k, g in enumerate(groups) if g.temperature == 0]
        assert [out[r] for r in greedy_rows] == reference["ids"]
    assert results[0][:2] == results[1][:2]
    assert len({tuple(r) for r in results[0][0]}) > len(PROMPTS)  # the samples are not all greedy copies


async def test_concurrent_greedy_requests_share_one_batch_and_match_generate(model_dir, reference):
    tok = reference["tokenizer"]
    async with backend(model_dir) as hf:
        replies = await asyncio.gather(*(hf.sample(SampleRequest(p, max_tokens=MAX_NEW)) for p in PROMPTS))
        stats = hf.statistics()
    assert (stats["batches"], stats["requests"], stats["prefills"]) == (1, len(PROMPTS), len(PROMPTS))
    assert stats["forward_passes"] == MAX_NEW  # one prefill, then one step per token for all rows
    for (sample,), ids in zip(replies, reference["ids"], strict=True):
        assert sample.text == tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        assert sample.tokens == len(ids)
        assert sample.finish_reason == ("length" if len(ids) == MAX_NEW else "stop")


async def test_token_cap_gives_length_and_counts_exclude_eos(model_dir, reference):
    cap = 3
    async with backend(model_dir) as hf:
        replies = await asyncio.gather(*(hf.sample(SampleRequest(p, max_tokens=cap)) for p in PROMPTS))
    for (sample,), ids in zip(replies, reference["ids"], strict=True):
        assert sample.tokens == min(len(ids), cap)
        assert sample.finish_reason == ("length" if len(ids) >= cap else "stop")


async def test_n_samples_of_one_prompt_share_one_prefill(model_dir, reference):
    async with backend(model_dir) as hf:
        greedy, sampled = await hf.sample_many(
            [SampleRequest(PROMPTS[0], 1, 0.0, MAX_NEW, seed=5), SampleRequest(PROMPTS[0], 6, 1.0, MAX_NEW, seed=6)]
        )
        stats = hf.statistics()
    assert len(greedy) == 1 and len(sampled) == 6
    assert greedy[0].tokens == len(reference["ids"][0])
    assert (stats["batches"], stats["sequences"], stats["prefills"]) == (1, 7, 1)
    assert len({s.text for s in sampled}) > 1  # temperature 1 on a random model: the samples differ


async def test_seeded_sampling_is_reproducible(model_dir):
    request = SampleRequest(PROMPTS[1], 8, 1.0, MAX_NEW, seed=123)
    async with backend(model_dir) as hf:
        first = await hf.sample(request)
        again = await hf.sample(request)
        other_seed = await hf.sample(SampleRequest(PROMPTS[1], 8, 1.0, MAX_NEW, seed=124))
        # Sharing a batch with other requests leaves a seeded request's samples unchanged.
        crowded, _ = await asyncio.gather(hf.sample(request), hf.sample(SampleRequest(PROMPTS[3], 5, 0.7, 4)))
        assert hf.statistics()["batches"] == 4
    assert first == again == crowded
    assert first != other_seed


async def test_max_batch_splits_queued_requests(model_dir):
    async with backend(model_dir, max_batch=2) as hf:
        await asyncio.gather(*(hf.sample(SampleRequest(p, max_tokens=4)) for p in PROMPTS))
        big = await hf.sample(SampleRequest(PROMPTS[0], 5, 0.0, 4))  # larger than max_batch: runs alone
        stats = hf.statistics()
    assert stats["batches"] == len(PROMPTS) // 2 + 1
    assert len(big) == 5


async def test_stop_string_cuts_the_reply(model_dir, reference):
    tok = reference["tokenizer"]
    text = tok.decode(reference["ids"][1], skip_special_tokens=True, clean_up_tokenization_spaces=False)
    stop = text[3:5]
    cut = text.index(stop)  # one character per token: the stop string is complete after cut + 2 tokens
    async with backend(model_dir, stop=["never", stop]) as hf:
        (sample,) = await hf.sample(SampleRequest(PROMPTS[1], max_tokens=MAX_NEW))
    assert (sample.text, sample.tokens, sample.finish_reason) == (text[:cut], cut + len(stop), "stop")


async def test_ignore_eos_runs_every_reply_to_the_cap(model_dir):
    async with backend(model_dir, ignore_eos=True) as hf:
        replies = await asyncio.gather(*(hf.sample(SampleRequest(p, max_tokens=7)) for p in PROMPTS))
    assert all(s.tokens == 7 and s.finish_reason == "length" for (s,) in replies)


async def test_describe_close_and_edge_requests(model_dir):
    hf = backend(model_dir, max_batch=8)
    info = hf.describe()
    assert info["name"] == "hf" and info["device"] == "cpu" and info["dtype"] == "float32" and info["max_batch"] == 8
    assert info["model"] == str(model_dir) and info["decoder"] == "gpt2"
    assert await hf.sample(SampleRequest("ab", n=0)) == []
    assert await hf.sample(SampleRequest("ab", max_tokens=0)) == [Sample("", 0, "length")]
    with pytest.raises(BackendError, match="positions"):
        await hf.sample(SampleRequest("a" * 200))
    await hf.aclose()
    await hf.aclose()  # safe twice
    with pytest.raises(BackendError, match="closed"):
        await hf.sample(SampleRequest("ab"))


def test_a_backend_survives_two_event_loops(model_dir):
    hf = backend(model_dir)
    first = asyncio.run(hf.sample(SampleRequest("ab", max_tokens=5)))
    second = asyncio.run(hf.sample(SampleRequest("ab", max_tokens=5)))
    asyncio.run(hf.aclose())
    assert first == second


async def test_closing_fails_requests_in_flight(model_dir):
    hf = backend(model_dir, ignore_eos=True)
    pending = asyncio.ensure_future(hf.sample(SampleRequest("ab", max_tokens=120)))
    for _ in range(3):  # let the worker take the request (it may or may not have by now)
        await asyncio.sleep(0)
    await hf.aclose()
    with pytest.raises(BackendError, match="closed"):
        await pending


@pytest.fixture(scope="module")
def other_model_dir(model_dir, tmp_path_factory):
    """The fixture model with other weights (another seed) and a manifest asking for T = 1.0."""
    torch.manual_seed(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(torch.randn_like(weight) * 0.2)
    path = tmp_path_factory.mktemp("tiny-gpt2-other")
    model.save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True).save_pretrained(path)
    (path / "maker.json").write_text('{"defaults": {"temperature": 1.0}}')
    return path


async def test_one_backend_serves_two_agents_each_by_its_own_model(model_dir, other_model_dir):
    requests = [SampleRequest(p, max_tokens=MAX_NEW, agent=agent) for agent in ("a", "b") for p in PROMPTS]
    async with HFBackend({"a": model_dir, "b": other_model_dir}, num_threads=1) as both:
        mixed = await asyncio.gather(*(both.sample(r) for r in requests))  # queued together, batched per agent
        assert both.statistics()["batches"] == 2
        with pytest.raises(ConfigError, match="no microagent 'c'"):
            await both.sample(SampleRequest("ab", agent="c"))
    alone = {}
    for agent, path in (("a", model_dir), ("b", other_model_dir)):
        async with backend(path) as single:  # a one-model backend serves every agent with that model
            alone[agent] = await asyncio.gather(*(single.sample(r) for r in requests if r.agent == agent))
    assert mixed == alone["a"] + alone["b"]
    assert alone["a"] != alone["b"]  # the two models really answer differently


# --- adapters: a LoRA folder is served merged into its base --------------------------------------
@pytest.fixture(scope="module")
def llama_with_adapters(model_dir, tmp_path_factory):
    """A random tiny Llama base (the fixture's tokenizer) and two random LoRA adapters on it, each
    folder as ``maker train`` writes it: peft's files and a maker.json naming the base."""
    peft = pytest.importorskip("peft")
    from maker.backends.hf import peft_quietly

    root = tmp_path_factory.mktemp("llama-adapters")
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    torch.manual_seed(3)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      initializer_range=0.2, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=None)
    base = transformers.LlamaForCausalLM(config).eval()
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    for seed, name in enumerate(("left", "right")):
        torch.manual_seed(10 + seed)
        lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
                               init_lora_weights=False)  # random B as well: the adapter really changes outputs
        with peft_quietly():
            wrapped = peft.get_peft_model(transformers.LlamaForCausalLM.from_pretrained(root / "base"), lora)
        wrapped.save_pretrained(root / name)
        (root / name / "maker.json").write_text('{"base": "../base", "defaults": {"temperature": 0.5}}')
    return root


def _peft_greedy(root, adapter, prompts, max_new):
    """Greedy replies of transformers + peft in process (no merging), the reference."""
    import peft

    from maker.backends.hf import peft_quietly

    tok = transformers.AutoTokenizer.from_pretrained(root / "base", local_files_only=True, padding_side="left")
    model = transformers.LlamaForCausalLM.from_pretrained(root / "base")
    if adapter is not None:
        with peft_quietly():
            model = peft.PeftModel.from_pretrained(model, root / adapter)
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.eval().generate(**enc, do_sample=False, max_new_tokens=max_new, eos_token_id=EOS, pad_token_id=PAD)
    return [tok.decode(row, skip_special_tokens=True) for row in out[:, enc["input_ids"].shape[1]:].tolist()]


async def test_adapters_are_served_merged_and_match_peft(llama_with_adapters):
    root = llama_with_adapters
    table = {"plain": root / "base", "l": root / "left", "l-too": root / "left", "r": root / "right"}
    async with HFBackend(table, num_threads=1) as served:
        replies = {agent: [s[0].text for s in await asyncio.gather(
            *(served.sample(SampleRequest(p, max_tokens=12, agent=agent)) for p in PROMPTS))] for agent in table}
        assert served.serving("l") is served.serving("l-too")  # one folder, one model, however many agents
        described = served.describe()
        assert described["decoder"] == "llama" and described["bases"] == [str((root / "base").resolve())]
    for agent, adapter in (("plain", None), ("l", "left"), ("r", "right")):
        assert replies[agent] == _peft_greedy(root, adapter, PROMPTS, 12), agent
    assert len({tuple(replies[a]) for a in ("plain", "l", "r")}) == 3  # three models, three sets of replies


def test_an_adapter_without_a_base_is_a_clear_error(llama_with_adapters, tmp_path):
    import shutil

    shutil.copytree(llama_with_adapters / "left", tmp_path / "orphan")
    (tmp_path / "orphan" / "maker.json").write_text('{"base": "../nowhere"}')
    with pytest.raises(ConfigError, match="holds no model"):
        HFBackend(tmp_path / "orphan")

"""The in-process transformers backend: a local causal LM, sampled in shared batches.

``sample()`` queues its request and awaits a future. One worker coroutine takes whatever is
queued (whole requests, up to ``max_batch`` sequences), decodes that batch in a worker thread, so
the event loop keeps collecting the next one, and resolves the futures. The requests of
concurrent callers therefore share forward passes, and all samples of one prompt share a single
prefill (``maker.backends.hf_decode``). Needs the ``hf`` extra (torch, transformers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maker.backends import gpt2_checkpoint
from maker.backends.base import Backend, Sample, SampleRequest
from maker.backends.codec import Codec
from maker.backends.drafting import Drafter, ReplyMemory
from maker.backends.hf_decode import GPT2Decoder, Group, decode, make_decoder
from maker.config import adapter_base
from maker.errors import BackendError, ConfigError

_COUNTERS = ("batches", "requests", "sequences", "prefills", "forward_passes", "tokens", "busy_s", "drafted",
             "draft_accepted")
_DRAFT_TOKENS = 32  # the longest draft fed to a row in one forward pass (maker.backends.drafting)


@dataclass(frozen=True)
class Microagent:
    """One model the backend serves: its tokenizer, weights, decoder and end tokens. An adapter
    folder's microagent is its base with the adapter merged in (``base`` names the base folder).
    A plain GPT-2 folder is read without transformers (``maker.backends.gpt2_checkpoint``): its
    ``model`` is None, its ``tokenizer`` the Rust one, and its decoder holds the weights."""

    path: Path
    tokenizer: Any
    model: Any
    decoder: Any
    eos: frozenset[int]
    vocab_size: int
    base: Path | None = None
    codec: Codec = field(init=False)  # the tokenizer's fast path

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", Codec(self.tokenizer))  # frozen: set once, here


class HFBackend(Backend):
    """Samples local Hugging Face causal LMs in-process, batching concurrent requests.

    >>> async def demo():  # doctest: +SKIP
    ...     async with HFBackend("models/hanoi/model", max_batch=256) as backend:
    ...         return await backend.sample(SampleRequest("cw prev = none state = [[2, 1], [], []]\\n", n=3))

    ``path`` is one model folder, which serves every request, or a table ``{agent: folder}``, which
    serves each request by its ``agent``. A folder is a whole model, or a LoRA adapter (peft's
    ``adapter_config.json``; its base named by its ``maker.json``, ``maker.config.adapter_base``):
    each base is loaded once and each adapter is merged into a copy of it, so an adapter runs on the
    same fast decoder as a whole model. A plain GPT-2 folder is read without transformers
    (``maker.backends.gpt2_checkpoint``; ``fast=False`` loads it through transformers). Agents that
    name the same folder share one model, and a batch holds the requests of one model. The models run in
    float32 on ``device`` ("cpu", "cuda" or "auto"). ``num_threads`` calls
    ``torch.set_num_threads`` (process-wide; None keeps torch's choice). ``stop`` strings end a
    reply (the text is cut before the first one); ``ignore_eos`` makes every reply run to
    ``max_tokens`` (for benchmarks); ``fast=False`` uses the model's own forward instead of the
    hand-written GPT-2 one. A request with more than ``max_batch`` samples runs as a batch alone.
    ``draft`` is the longest draft checked per row in one forward pass (``maker.backends.drafting``;
    0: none); drafts change how many passes a reply takes, never the reply.
    """

    name = "hf"

    def __init__(
        self, path: str | os.PathLike[str] | Mapping[str | None, str | os.PathLike[str]], *, device: str = "auto",
        max_batch: int = 256, num_threads: int | None = None, stop: Sequence[str] = (), ignore_eos: bool = False,
        fast: bool = True, draft: int = _DRAFT_TOKENS,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
        if draft < 0:
            raise ConfigError(f"draft must be >= 0 tokens, got {draft}")
        if any(not s for s in stop):
            raise ConfigError("stop strings must not be empty")
        if isinstance(path, Mapping) and not path:
            raise ConfigError("the agent table is empty: give at least one {agent: model folder}")
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.device = torch.device(device)
        self.ignore_eos, self.fast, self.max_batch, self.stop = ignore_eos, fast, max_batch, tuple(stop)
        self.draft = draft
        self._replies: dict[int, ReplyMemory] = {}  # per microagent: replies per prompt, drafts for later samples
        # One folder serves every agent (the table's None entry); a table serves agents by name.
        table = dict(path) if isinstance(path, Mapping) else {None: path}
        self._bases: dict[Path, tuple[Any, Any]] = {}  # base folder -> (tokenizer, model), loaded once
        loaded: dict[Path, Microagent] = {}  # folder -> its microagent, loaded once however many agents name it
        self.agents: dict[str | None, Microagent] = {}
        for agent, folder in table.items():
            resolved = Path(folder).resolve()
            if resolved not in loaded:
                loaded[resolved] = self._load(Path(folder))
            self.agents[agent] = loaded[resolved]
        first = next(iter(self.agents.values()))
        self.path, self.tokenizer, self.model, self.decoder = first.path, first.tokenizer, first.model, first.decoder
        self._generator = torch.Generator(self.device)
        self._generator.seed()  # unseeded requests draw from one nondeterministic stream
        # batches, requests, sequences, prefills (distinct prompts per batch, whatever their n),
        # forward_passes, tokens (generated, EOS excluded), busy_s (decoding in the worker thread)
        self._stats: Counter[str] = Counter()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="maker-hf")
        self._abort = threading.Event()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pending: deque[tuple[SampleRequest, asyncio.Future[list[Sample]]]] = deque()
        self._wake = asyncio.Event()

    def _load(self, path: Path) -> Microagent:
        base = adapter_base(path)
        if base is None:
            plain = gpt2_checkpoint.read(path, self.device) if self.fast else None
            if plain is not None:
                decoder = GPT2Decoder(plain.config, plain.weights)
                eos = frozenset() if self.ignore_eos else plain.eos
                return Microagent(path, plain.tokenizer, None, decoder, eos, len(decoder.wte))
            tokenizer, model = self._load_model(path)
        else:
            if base not in self._bases:
                self._bases[base] = self._load_model(base)
            tokenizer, base_model = self._bases[base]
            model = _merged(base_model, path)
        eos = frozenset() if self.ignore_eos else _eos_ids(tokenizer, model)
        vocab_size = model.get_input_embeddings().num_embeddings
        return Microagent(path, tokenizer, model, make_decoder(model, self.fast), eos, vocab_size, base)

    def _load_model(self, path: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load a causal LM from {str(path)!r}: {exc}") from exc
        return tokenizer, model.to(self.device).eval()

    def serving(self, agent: str | None) -> Microagent:
        """The model that serves ``agent``: its own in a table, else the one folder given."""
        served = self.agents.get(agent) or self.agents.get(None)
        if served is None:
            known = ", ".join(sorted(str(a) for a in self.agents))
            raise ConfigError(f"the hf backend has no microagent {agent!r}; it serves: {known}")
        return served

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name, "simulated": False, "model": str(self.path), "device": str(self.device),
            "dtype": "float32", "max_batch": self.max_batch, "decoder": self.decoder.kind,
            "stop": list(self.stop), "ignore_eos": self.ignore_eos,
        }
        if named := {agent: str(served.path) for agent, served in self.agents.items() if agent is not None}:
            described["agents"] = named
        bases = sorted({str(served.base) for served in self.agents.values() if served.base is not None})
        if bases:  # adapters served merged into their base
            described["bases"] = bases
        return described

    def statistics(self) -> dict[str, int | float]:
        return {key: self._stats[key] for key in _COUNTERS}

    async def sample(self, request: SampleRequest) -> list[Sample]:
        if request.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {request.temperature}")
        if request.n < 1:
            return []
        if self._closed:
            raise BackendError("the hf backend is closed")
        self.serving(request.agent)  # an unknown agent fails here, in the caller, not in the worker
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # First call, or a new event loop (each asyncio.run has its own): start a worker there.
            self._loop, self._pending, self._wake = loop, deque(), asyncio.Event()
            self._worker = loop.create_task(self._work(), name="maker-hf-worker")
        future: asyncio.Future[list[Sample]] = loop.create_future()
        self._pending.append((request, future))
        self._wake.set()
        return await future

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._abort.set()  # a batch in flight stops at its next step
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done() and self._loop is asyncio.get_running_loop():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        loop = asyncio.get_running_loop()
        while self._pending:
            _, future = self._pending.popleft()
            if not future.done() and future.get_loop() is loop:  # an old loop's futures are gone with it
                future.set_exception(BackendError("the hf backend was closed"))
        await loop.run_in_executor(None, lambda: self._executor.shutdown(wait=True, cancel_futures=True))

    # --- the worker ---------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # callers woken in this same tick get to queue first
            while self._pending:
                batch = self._take_batch()
                if not batch:
                    continue
                try:
                    results = await loop.run_in_executor(self._executor, self._run_batch, [r for r, _ in batch])
                except asyncio.CancelledError:  # closing: callers in flight hear it as a BackendError
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(BackendError("the hf backend was closed"))
                    raise
                except Exception as exc:  # the whole batch failed: every caller hears why
                    error = BackendError(f"hf backend failed: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    results = [error] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller was cancelled meanwhile
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)

    def _take_batch(self) -> list[tuple[SampleRequest, asyncio.Future[list[Sample]]]]:
        """Whole requests, oldest first, up to ``max_batch`` sequences (a larger request runs alone)."""
        batch: list[tuple[SampleRequest, asyncio.Future[list[Sample]]]] = []
        later: deque[tuple[SampleRequest, asyncio.Future[list[Sample]]]] = deque()  # other agents' requests
        size = 0
        while self._pending:
            request, future = self._pending[0]
            if future.done():
                self._pending.popleft()
                continue
            if batch and self.serving(request.agent) is not self.serving(batch[0][0].agent):
                later.append(self._pending.popleft())
                continue
            if batch and size + request.n > self.max_batch:
                break
            batch.append(self._pending.popleft())
            size += request.n
        self._pending.extendleft(reversed(later))
        return batch

    # --- in the worker thread -----------------------------------------------------------------
    def _run_batch(self, requests: list[SampleRequest]) -> list[list[Sample] | BackendError]:
        started = time.perf_counter()
        with torch.inference_mode():
            results = self._decode(self.serving(requests[0].agent), requests)
        self._stats.update(batches=1, requests=len(requests), sequences=sum(r.n for r in requests),
                           busy_s=time.perf_counter() - started)
        return results

    def _decode(self, agent: Microagent, requests: list[SampleRequest]) -> list[list[Sample] | BackendError]:
        """Each request's samples (or why it cannot be served); counts prefills, forward passes and tokens."""
        results: list[list[Sample] | BackendError] = [[] for _ in requests]
        prompt_index = {p: k for k, p in enumerate(dict.fromkeys(r.prompt for r in requests))}
        codec = agent.codec
        encoded = codec.encode_batch(list(prompt_index))
        limit = agent.decoder.max_positions
        prompts: list[list[int]] = []
        prompt_texts: list[str] = []  # the text of each of `prompts`, for the drafter
        used: dict[int, int] = {}  # prompt index -> index among the prompts actually decoded
        groups: list[tuple[int, Group]] = []  # (request index, group)
        for i, r in enumerate(requests):
            ids = encoded[prompt_index[r.prompt]]
            room = r.max_tokens if limit is None else min(r.max_tokens, limit - len(ids))
            if not ids:
                results[i] = BackendError("the prompt is empty after tokenization: there is nothing to continue")
            elif limit is not None and len(ids) >= limit:
                results[i] = BackendError(f"the prompt has {len(ids)} tokens; the model takes at most {limit} positions")
            elif room < 1:
                results[i] = [Sample("", 0, "length")] * r.n
            else:
                k = used.setdefault(prompt_index[r.prompt], len(prompts))
                if k == len(prompts):
                    prompts.append(ids)
                    prompt_texts.append(r.prompt)
                seed = r.seed if r.temperature > 0 else None
                gen = None if seed is None else torch.Generator(self.device).manual_seed(seed)
                stop = self.stop + tuple(s for s in r.stop if s not in self.stop)  # the backend's and the request's
                groups.append((i, Group(k, r.n, r.temperature, room, gen, r.draft, stop)))
        if not groups:
            return results
        hit_stop = None if not any(g.stop for _, g in groups) else lambda ids, stops: _hit_stop(codec, ids, stops)
        drafter = None
        if self.draft:
            # The memory is per microagent: another model's replies would be poor drafts.
            memory = self._replies.setdefault(id(agent), ReplyMemory())
            drafter = Drafter(prompts, prompt_texts, codec, memory, self.draft, agent.vocab_size)
        out, finish, passes = decode(
            agent.decoder, prompts, [g for _, g in groups], eos=agent.eos, generator=self._generator,
            hit_stop=hit_stop, aborted=self._abort.is_set, drafter=drafter,
        )
        self._stats.update(prefills=len(prompts), forward_passes=passes, tokens=sum(map(len, out)))
        if drafter is not None:
            self._stats.update(drafter.stats)
        distinct = list(dict.fromkeys(map(tuple, out)))  # a step's samples mostly agree: decode each reply once
        decoded = dict(zip(distinct, codec.decode_batch(distinct), strict=True))
        texts = [decoded[tuple(ids)] for ids in out]
        row = 0
        for i, g in groups:
            results[i] = [Sample(_cut(texts[j], g.stop), len(out[j]), finish[j]) for j in range(row, row + g.n)]  # type: ignore[arg-type]
            row += g.n
        return results


def _hit_stop(codec: Codec, ids: list[int], stops: tuple[str, ...]) -> bool:
    """Whether the reply's last tokens hold one of ``stops``. A stop string of c characters spans at most
    c tokens that print something; the slack covers tokens that print nothing (special tokens, partial
    UTF-8 bytes)."""
    tail = codec.decode(ids[-(2 * max(map(len, stops)) + 2):])
    return any(s in tail for s in stops)


def _cut(text: str, stops: tuple[str, ...]) -> str:
    """The reply up to its first stop string."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """peft 0.21 calls a transformers 5.2x method that warns it is deprecated (FutureWarning, once
    per model it wraps); the warning is about peft's code, not the user's, so it is kept off."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _merged(base_model: Any, adapter: Path) -> Any:
    """A copy of ``base_model`` with the LoRA adapter in ``adapter`` merged into its weights."""
    import copy

    from peft import PeftModel

    try:
        with peft_quietly():
            merged = PeftModel.from_pretrained(copy.deepcopy(base_model), adapter).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BackendError(f"cannot apply the adapter in {str(adapter)!r} to its base: {exc}") from exc
    return merged.eval()


def _eos_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    """Every token that ends a reply: the tokenizer's EOS and the generation config's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]
    return frozenset(i for i in ids if i is not None)

"""Train the Hanoi microagent: a small GPT-2 from scratch, fp32, CPU, one thread, resumable.

    .venv/bin/python models/hanoi/train.py                 # start, or resume from the last checkpoint
    nohup .venv/bin/python models/hanoi/train.py >> models/hanoi/train.log 2>&1 &   # in the background
    .venv/bin/python models/hanoi/train.py --budget-min 90  # a longer time budget (resumes too)
    .venv/bin/python models/hanoi/train.py --extra-min 20   # after the budget: 20 more minutes at the lowest lr
    .venv/bin/python models/hanoi/train.py --extra-min 30 --extra-lr 4e-4   # ... on a second cosine from 4e-4
    # fine-tune the checkpoint on another data mix (what the shipped weights had, after step 6150):
    .venv/bin/python models/hanoi/train.py --budget-min 91 --extra-min 25 --extra-lr 5e-4 \
        --set data.boundary_share=0.5 data.boundary_top_share=0.7 val_big_size=2000

Loss is on the reply tokens only (reply + EOS). Every ``eval_every_s`` seconds the model is
scored on a fixed validation set of the engine's own steps (10..20 disks, 0 -> 2): greedy exact
match, computed by teacher forcing (a reply is reproduced greedily exactly when the argmax at
every reply position is the right token, so one forward pass gives the greedy result). Each time
the validation errors drop, the model and tokenizer are exported with save_pretrained to
``models/hanoi/model``. Steps the model gets wrong during training go to a replay buffer and are
trained on again (hard-example replay). The learning rate follows the wall-clock budget (warm-up,
then cosine), so the schedule ends when the time does; checkpoints (every few minutes, to
``models/hanoi/checkpoints/``) keep the elapsed time, the optimiser, the RNG states and the buffer.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import prepare  # noqa: E402
import tokenizer as htok  # noqa: E402

torch.set_num_threads(1)


@dataclass
class TrainConfig:
    # model (GPT-2 from a config, no pretrained weights)
    n_layer: int = 4  # transformer blocks
    n_embd: int = 128  # width
    n_head: int = 4  # attention heads (head size 32)
    n_positions: int = 256  # max prompt + reply tokens (20 disks need about 60, 64 disks about 150)
    # optimisation
    batch_size: int = 128  # sequences per step; each batch holds one disk count (no padding)
    lr: float = 2e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.03  # the cosine ends at lr * this
    warmup_steps: int = 300  # linear warm-up
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    budget_min: float = 70.0  # wall-clock minutes of training; the cosine schedule spans them
    max_steps: int = 0  # stop after this many steps too (0: no limit)
    extra_min: float = 0.0  # minutes to go on after the budget ...
    extra_lr: float = 0.0  # ... at the lowest learning rate (0), or on a second cosine from this peak
    # hard-example replay
    replay_share: float = 0.125  # share of each batch drawn from steps the model got wrong
    replay_capacity: int = 4000  # per disk count
    # evaluation, checkpoints, export
    val_size: int = 6000  # fixed validation steps (10..20 disks, 0 -> 2; evaluate.py uses another seed)
    val_seed: int = 1234
    val_big_size: int = 0  # more validation steps: moves of the top-half disks of 16..20-disk runs
    eval_every_s: float = 240.0  # seconds of training between validations
    ckpt_every_s: float = 180.0  # seconds between checkpoints
    log_every: int = 50  # steps between loss lines
    seed: int = 0
    data: prepare.DataConfig = field(default_factory=prepare.DataConfig)
    ckpt_dir: str = str(HERE / "checkpoints")
    export_dir: str = str(HERE / "model")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def make_model(cfg: TrainConfig, tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    conf = GPT2Config(
        vocab_size=len(tok),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return GPT2LMHeadModel(conf)


def encode(tok, states) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask, labels (-100 except on reply + EOS), right-padded."""
    pairs = [prepare.answer(s) for s in states]
    prompts = tok([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    replies = tok([r for _, r in pairs], add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    seqs = [p + r + [eos] for p, r in zip(prompts, replies, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), eos, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, len(p) : len(s)] = ids[i, len(p) : len(s)]
    return ids, mask, labels


def forward(model, ids, mask, labels):
    """Mean reply-token loss and, per sequence, whether greedy decoding reproduces the reply."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100)
    with torch.no_grad():
        ok = (logits.argmax(-1) == target) | (target == -100)
        exact = ok.all(dim=1)
    return loss, exact


@torch.inference_mode()
def validate(model, tok, val_batches) -> tuple[int, int, float, dict[str, int]]:
    model.eval()
    wrong, total, loss_sum = 0, 0, 0.0
    by_disks: dict[str, int] = collections.Counter()
    for disks, (ids, mask, labels) in val_batches:
        loss, exact = forward(model, ids, mask, labels)
        wrong += int((~exact).sum())
        by_disks[disks] += int((~exact).sum())
        total += len(exact)
        loss_sum += float(loss) * len(exact)
    model.train()
    return wrong, total, loss_sum / total, {d: n for d, n in sorted(by_disks.items()) if n}


def lr_at(cfg: TrainConfig, step: int, elapsed: float) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    budget = cfg.budget_min * 60
    low = cfg.lr * cfg.min_lr_ratio
    if elapsed > budget and cfg.extra_lr > 0 and cfg.extra_min > 0:
        frac = min(1.0, (elapsed - budget) / (cfg.extra_min * 60))
        return low + (cfg.extra_lr - low) * 0.5 * (1 + math.cos(math.pi * frac))
    frac = min(1.0, elapsed / budget)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def export(model, tok, path: str, meta: dict) -> None:
    from transformers import GenerationConfig

    tmp = Path(path + ".tmp")
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
        do_sample=False,
        max_new_tokens=200,
    )
    model.save_pretrained(str(tmp), safe_serialization=True)
    htok.save_tokenizer(tmp)
    (tmp / "training_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    # The manifest maker reads: the run settings this model asks for (maker.config.resolve_config).
    manifest = Path(path) / "maker.json"
    if manifest.exists():
        (tmp / "maker.json").write_text(manifest.read_text())
    final = Path(path)
    if final.exists():
        old = Path(path + ".old")
        if old.exists():
            import shutil

            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        import shutil

        shutil.rmtree(old)
    else:
        tmp.rename(final)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, help="override TrainConfig.budget_min (also on resume)")
    ap.add_argument("--max-steps", type=int, help="override TrainConfig.max_steps")
    ap.add_argument(
        "--extra-min", type=float, help="train this many minutes past the budget at the lowest learning rate"
    )
    ap.add_argument(
        "--extra-lr", type=float, help="peak lr of a second cosine over the extra minutes (default: lowest lr)"
    )
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="override config fields: name=value or data.name=value; on a resumed run this fine-tunes "
        "the checkpoint with the new settings and forgets its best validation score",
    )
    args = ap.parse_args()

    cfg = TrainConfig()
    ckpt_path = Path(cfg.ckpt_dir) / "last.pt"  # always the default folder: resuming needs no flags
    state = None
    if ckpt_path.exists() and not args.fresh:
        state = torch.load(ckpt_path, weights_only=False)
        saved = state["config"]
        data = prepare.DataConfig(**saved.pop("data"))
        saved["betas"] = tuple(saved["betas"])
        cfg = TrainConfig(**saved, data=data)
        log(f"resuming from {ckpt_path} at step {state['step']}, {state['elapsed'] / 60:.1f} min trained")
    for item in args.set:
        name, value = item.split("=", 1)
        owner = cfg.data if name.startswith("data.") else cfg
        field_name = name.removeprefix("data.")
        cur = getattr(owner, field_name)
        setattr(owner, field_name, type(cur)(value))
    if state is None:
        ckpt_path = Path(cfg.ckpt_dir) / "last.pt"
    if args.budget_min is not None:
        cfg.budget_min = args.budget_min
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    if args.extra_min is not None:
        cfg.extra_min = args.extra_min
    if args.extra_lr is not None:
        cfg.extra_lr = args.extra_lr
    log("config " + json.dumps(dataclasses.asdict(cfg)))

    tok = htok.build_tokenizer()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, tok)
    log(f"model: GPT-2 {cfg.n_layer} x {cfg.n_embd}, {sum(p.numel() for p in model.parameters()):,} parameters")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
    )
    rng = random.Random(cfg.seed)
    replay: dict[int, collections.deque] = collections.defaultdict(
        lambda: collections.deque(maxlen=cfg.replay_capacity)
    )
    step, elapsed, best = 0, 0.0, (10**9, float("inf"))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        for d, items in state["replay"].items():
            replay[d].extend(items)
        step, elapsed, best = state["step"], state["elapsed"], tuple(state["best"])
        if args.set:  # a fine-tune: its validation set or goal may differ, so old scores do not compare
            best = (10**9, float("inf"))

    weights = prepare.disk_weights(cfg.data)
    disk_list, disk_w = list(weights), list(weights.values())

    val = prepare.eval_states(cfg.val_size, cfg.val_seed)
    by_d: dict[int, list] = collections.defaultdict(list)
    for s in val:
        by_d[sum(len(p) for p in s.pegs)].append(s)
    val_batches = []
    for d in sorted(by_d):
        for i in range(0, len(by_d[d]), 512):
            val_batches.append((str(d), encode(tok, by_d[d][i : i + 512])))
    big: dict[int, list] = collections.defaultdict(list)
    for s in prepare.big_move_eval_states(cfg.val_big_size, cfg.val_seed + 1):
        big[sum(len(p) for p in s.pegs)].append(s)
    for d in sorted(big):  # reported as "D*"
        for i in range(0, len(big[d]), 512):
            val_batches.append((f"{d}*", encode(tok, big[d][i : i + 512])))

    def checkpoint() -> None:
        Path(cfg.ckpt_dir).mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "config": dataclasses.asdict(cfg),
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
                "replay": {d: list(q) for d, q in replay.items()},
                "step": step,
                "elapsed": elapsed,
                "best": list(best),
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    def evaluate_and_export() -> None:
        nonlocal best
        t0 = time.time()
        wrong, total, vloss, by_disks = validate(model, tok, val_batches)
        improved = (wrong, vloss) < best
        log(
            f"VAL step {step} min {elapsed / 60:.1f}: greedy exact {100 * (1 - wrong / total):.3f} % "
            f"({wrong}/{total} wrong) loss {vloss:.5f} wrong by disks {by_disks} "
            f"({time.time() - t0:.1f}s){' -> exported' if improved else ''}"
        )
        if improved:
            best = (wrong, vloss)
            export(
                model,
                tok,
                cfg.export_dir,
                {
                    "step": step,
                    "train_minutes": round(elapsed / 60, 2),
                    "val_wrong": wrong,
                    "val_total": total,
                    "val_loss": vloss,
                    "config": dataclasses.asdict(cfg),
                },
            )

    model.train()
    last_eval = last_ckpt = elapsed
    win_loss, win_exact, win_n, win_t0, win_tok = 0.0, 0, 0, time.time(), 0
    budget_s = (cfg.budget_min + cfg.extra_min) * 60
    recent: collections.deque = collections.deque(maxlen=50)  # recent step times
    while elapsed < budget_s and (cfg.max_steps <= 0 or step < cfg.max_steps):
        t0 = time.time()
        disks = rng.choices(disk_list, disk_w)[0]
        n_replay = min(len(replay[disks]), int(cfg.batch_size * cfg.replay_share))
        states = [replay[disks].popleft() for _ in range(n_replay)]
        states += [prepare.sample_state(rng, disks, cfg.data) for _ in range(cfg.batch_size - n_replay)]
        ids, mask, labels = encode(tok, states)
        lr = lr_at(cfg, step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, exact = forward(model, ids, mask, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        for s, ok in zip(states, exact.tolist(), strict=True):
            if not ok:
                replay[disks].append(s)
        step += 1
        # a step that took far longer than usual was paused (SIGSTOP, a suspended laptop): it
        # counts as a typical step, so pauses do not eat the budget or advance the schedule
        dt = time.time() - t0
        typical = sorted(recent)[len(recent) // 2] if recent else dt
        elapsed += min(dt, 10 * typical)
        recent.append(dt)
        win_loss += float(loss.detach())
        win_exact += int(exact.sum())
        win_n += len(states)
        win_tok += int(mask.sum())
        if step % cfg.log_every == 0:
            dt = time.time() - win_t0
            log(
                f"step {step} min {elapsed / 60:.1f} lr {lr:.2e} loss {win_loss / cfg.log_every:.5f} "
                f"train exact {100 * win_exact / win_n:.2f} % tok/s {win_tok / dt:.0f} "
                f"replay {sum(len(q) for q in replay.values())}"
            )
            win_loss, win_exact, win_n, win_t0, win_tok = 0.0, 0, 0, time.time(), 0
        if elapsed - last_eval >= cfg.eval_every_s:
            evaluate_and_export()
            last_eval = elapsed
        if elapsed - last_ckpt >= cfg.ckpt_every_s:
            checkpoint()
            last_ckpt = elapsed
    evaluate_and_export()
    checkpoint()
    log(f"done: step {step}, {elapsed / 60:.1f} min; best val {best[0]} wrong; model in {cfg.export_dir}")


if __name__ == "__main__":
    main()

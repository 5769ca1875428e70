"""SAE-tuned adapters: the TopK SAE, its place in the model's path, and sae-lora training."""

import pytest

torch = pytest.importorskip("torch")

from maker.errors import ConfigError  # noqa: E402
from maker.training.sae import SAE_FILE, SAEInsert, TopKSAE, collect_activations, load_sae, train_sae  # noqa: E402
from maker.training.trainer import Trainer, pool_source  # noqa: E402
from tests.training.test_trainer import POOL, _settings  # noqa: E402


def test_a_topk_sae_keeps_k_features_a_token_and_learns_to_rebuild_its_data():
    torch.manual_seed(0)
    data = torch.randn(2048, 16) @ torch.randn(16, 16)
    sae, numbers = train_sae(data, features=64, k=4, seconds=1.0)
    assert ((sae.encode(data[:100]) != 0).sum(-1) <= 4).all()
    assert numbers["fraction_unexplained"] < 0.5 and numbers["steps"] > 10
    assert not any(p.requires_grad for p in sae.parameters())  # frozen once fit
    with pytest.raises(ConfigError, match="k <= features"):
        TopKSAE(16, 8, 9)


def test_the_inserted_sae_replaces_a_layer_only_while_active(tiny_base):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        acts = collect_activations(model, [(ids, mask)], 0)
        assert acts.shape == (4, model.config.hidden_size)
        insert = SAEInsert(model, 0, TopKSAE(model.config.hidden_size, 32, 2))
        assert not torch.allclose(model(input_ids=ids).logits, plain)
        insert.active = False
        assert torch.equal(model(input_ids=ids).logits, plain)
        insert.remove()
    with pytest.raises(ConfigError, match="SAE layer"):
        SAEInsert(model, 99, TopKSAE(model.config.hidden_size, 32, 2))


@pytest.mark.parametrize("objective", ["sft", "kl"])
def test_sae_lora_trains_an_adapter_through_the_sae_and_serves_it_without(tiny_base, tmp_path, objective):
    settings = _settings(method="sae-lora", sae_source=str(tiny_base), sae_layer=0, sae_features=64, sae_k=8,
                         sae_objective=objective, sae_examples=64, budget_min=0.05, max_steps=160)
    trainer = Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, settings, log=lambda _: None)
    trainer._insert_sae()  # what train() does first; the loss through the SAE before any training
    with torch.no_grad():
        before = trainer._forward(POOL)[0].item()
    summary = trainer.train(progress=False)
    with torch.no_grad():
        after = trainer._forward(POOL)[0].item()
    assert after < before / 2  # the adapter learned, through the SAE, what its objective asks
    assert (tmp_path / "adapter_config.json").is_file() and not (tmp_path / "config.json").exists()
    assert (tmp_path / SAE_FILE).is_file() and load_sae(tmp_path)[1] == 0
    assert summary["sae"]["features"] == 64 and summary["sae"]["tokens"] > 0
    assert trainer.sae.active  # scoring turns it off (serving has no SAE) and back on


def test_sae_lora_needs_a_source(tiny_base, tmp_path):
    with pytest.raises(ConfigError, match="sae-source"):
        Trainer(tiny_base, tmp_path, pool_source(POOL), POOL, _settings(method="sae-lora"), log=lambda _: None)

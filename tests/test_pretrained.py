"""Pretrained models by name (maker.pretrained): where they live, how a name resolves, clear errors.

The real model (SmolLM2, installed by scripts/setup) is used only by the tests marked below; they skip,
saying why, where it is not installed."""

import json

import pytest

from maker import AgentCatalog, ConfigError
from maker.config import adapter_base
from maker.pretrained import installed_folder, local_folder, models_home


def fake_install(home, name="smollm2"):
    folder = home / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "maker.json").write_text(json.dumps({"pretrained": name, "defaults": {"temperature": 0.7}}))
    return folder


def test_models_live_under_maker_models(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKER_MODELS", str(tmp_path))
    assert models_home() == tmp_path
    assert installed_folder("smollm2") is None and local_folder("smollm2") is None
    folder = fake_install(tmp_path)
    assert installed_folder("smollm2") == folder and local_folder("smollm2") == folder
    assert installed_folder("gpt-17") is None  # not a name maker installs


def test_an_existing_folder_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKER_MODELS", str(tmp_path / "cache"))
    fake_install(tmp_path / "cache")
    own = tmp_path / "smollm2"
    own.mkdir()
    monkeypatch.chdir(tmp_path)
    assert local_folder("smollm2") == own.relative_to(tmp_path)


def test_a_catalog_serves_an_installed_model_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKER_MODELS", str(tmp_path))
    folder = fake_install(tmp_path)
    catalog = AgentCatalog.coerce(["llm=smollm2"])
    assert catalog.folders() == {"llm": str(folder.resolve())}
    assert catalog.defaults("llm") == {"temperature": 0.7}  # its manifest's run settings


def test_a_missing_model_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKER_MODELS", str(tmp_path))
    with pytest.raises(ConfigError, match="maker install smollm2"):
        AgentCatalog.coerce(["llm=smollm2"]).folders()


def test_an_adapter_names_its_pretrained_base_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKER_MODELS", str(tmp_path / "cache"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "maker.json").write_text(json.dumps({"base": "smollm2"}))
    with pytest.raises(ConfigError, match="not installed here.*maker install smollm2"):
        adapter_base(adapter)
    folder = fake_install(tmp_path / "cache")
    assert adapter_base(adapter) == folder


def test_install_refuses_an_unknown_name():
    from maker.pretrained import install

    with pytest.raises(ConfigError, match="unknown pretrained model 'gpt-17'; maker installs: smollm2"):
        install("gpt-17")


def test_the_install_command_names_what_it_can_install(capsys):
    from maker.cli import main

    assert main(["install", "gpt-17"]) == 2
    assert "unknown pretrained model 'gpt-17'; maker installs: smollm2" in capsys.readouterr().err


# --- the real model ---------------------------------------------------------------------------
real = pytest.mark.skipif(installed_folder("smollm2") is None,
                          reason="SmolLM2 is not installed: run `maker install smollm2` (scripts/setup does)")


@real
async def test_smollm2_answers_a_few_shot_prompt_and_stops_at_the_line_end():
    from maker.backends.hf import HFBackend
    from maker.samples import SampleRequest

    prompt = "".join(f"Q: What is {a} + {a}?\nA: {2 * a}\n\n" for a in (1, 3, 5, 7)) + "Q: What is 2 + 2?\nA:"
    async with HFBackend(installed_folder("smollm2")) as backend:
        free, stopped = await backend.sample_many([SampleRequest(prompt, 1, 0.0, 24),
                                                  SampleRequest(prompt, 1, 0.0, 24, stop=("\n",))])
    assert stopped[0].text == " 4" and stopped[0].finish_reason == "stop"
    assert free[0].text.startswith(" 4\n")  # without the stop it runs on into the next example

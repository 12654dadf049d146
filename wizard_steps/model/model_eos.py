"""The end-of-text token of a Hugging Face folder: onnxruntime-genai refuses a genai_config.json
whose eos_token_id is null, and the model builder takes it only from config.json and
generation_config.json. Many fine-tunes keep it only in the tokenizer, so it is found when the
folder is chosen and written into genai_config.json after the builder (never into the user's
folder)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core.errors import ModelFolderError
from wizard_steps.core.i18n import _

_MAX_TOKENIZER_JSON = 64 * 1024 * 1024


@dataclass(frozen=True)
class EosToken:
    """The end-of-text token id(s) and where they were found: config.json, generation_config.json
    or the tokenizer (many fine-tunes keep it only in one of the last two)."""

    ids: tuple[int, ...]
    source: str  # "config.json" | "generation_config.json" | "tokenizer"
    token: str | None = None  # its text, when the tokenizer named it

    @property
    def note(self) -> str:
        """One sentence when the id is not in config.json (the conversion fills it in), else ""."""
        if self.source == "config.json":
            return ""
        where = (_("the tokenizer's eos_token {token}").format(token=self.token) if self.source == "tokenizer"
                 else self.source)
        return _("config.json has no eos_token_id; the conversion takes {ids} from {where}.").format(
            ids=", ".join(map(str, self.ids)), where=where)


def _token_ids(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    return ()


def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def tokenizer_eos(folder: Path) -> tuple[str, int] | None:
    """The tokenizer's eos_token and its id (from tokenizer_config.json's added tokens or
    tokenizer.json's added tokens and vocabulary); None when it names none or it has no id."""
    config = _json_object(folder / "tokenizer_config.json")
    token = config.get("eos_token") or _json_object(folder / "special_tokens_map.json").get("eos_token")
    token = token.get("content") if isinstance(token, dict) else token
    if not isinstance(token, str) or not token:
        return None
    decoder = config.get("added_tokens_decoder")
    for key, entry in (decoder.items() if isinstance(decoder, dict) else ()):
        if isinstance(entry, dict) and entry.get("content") == token and str(key).isdigit():
            return token, int(key)
    file = folder / "tokenizer.json"
    if file.is_file() and file.stat().st_size <= _MAX_TOKENIZER_JSON:
        data = _json_object(file)
        for entry in data.get("added_tokens") or []:
            if isinstance(entry, dict) and entry.get("content") == token and isinstance(entry.get("id"), int):
                return token, entry["id"]
        model = data.get("model")
        if not isinstance(model, dict):
            model = {}
        vocab = model.get("vocab")
        if isinstance(vocab, dict) and isinstance(vocab.get(token), int):
            return token, vocab[token]
    return None


def find_eos(folder: Path, config: dict) -> EosToken:
    """config.json's eos_token_id, else generation_config.json's, else the tokenizer's eos_token;
    raises ModelFolderError when none has one (the converted model could not load)."""
    text_config = config.get("text_config")
    if not isinstance(text_config, dict):
        text_config = {}
    ids = _token_ids(config.get("eos_token_id", text_config.get("eos_token_id")))
    if ids:
        return EosToken(ids, "config.json")
    ids = _token_ids(_json_object(folder / "generation_config.json").get("eos_token_id"))
    if ids:
        return EosToken(ids, "generation_config.json")
    found = tokenizer_eos(folder)
    if found:
        return EosToken((found[1],), "tokenizer", found[0])
    raise ModelFolderError(
        _("config.json has no eos_token_id, and neither generation_config.json nor the tokenizer "
          "names an end-of-text token, so the converted model would not load."),
        _('Add "eos_token_id": ID to config.json, where ID is the token that ends a reply '
          "(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))."))


def fill_eos_token_id(folder: Path) -> tuple[int, ...] | None:
    """After the model builder: when genai_config.json has no eos_token_id (only the tokenizer
    names it), write the tokenizer's id there (and as pad_token_id when that is missing too).
    Returns the ids written, or None when nothing was missing or nothing is known."""
    path = Path(folder) / "genai_config.json"
    genai = _json_object(path)
    model = genai.get("model")
    if not isinstance(model, dict) or _token_ids(model.get("eos_token_id")):
        return None
    found = tokenizer_eos(Path(folder))
    if found is None:
        return None
    model["eos_token_id"] = found[1]
    if not _token_ids(model.get("pad_token_id")):
        model["pad_token_id"] = found[1]
    tmp = path.with_name(f".{path.name}.eos")
    tmp.write_text(json.dumps(genai, indent=4) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return (found[1],)

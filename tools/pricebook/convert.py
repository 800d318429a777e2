#!/usr/bin/env python3
"""Convert litellm's price list into promptctl's embedded price book (src/pricing/data/prices.json).

Run at development time only; promptctl never reads litellm at run time. Obtain the inputs with

    pip download --no-deps litellm==1.82.6     # NEVER 1.82.7 or 1.82.8: those releases were compromised
    unzip -j litellm-1.82.6-py3-none-any.whl litellm/model_prices_and_context_window_backup.json
    pip download --no-deps litellm==1.74.0     # only for retired Claude 3.5 models, see LEGACY_MODELS
    unzip -j litellm-1.74.0-py3-none-any.whl litellm/model_prices_and_context_window_backup.json -d legacy

then

    python3 tools/pricebook/convert.py --source model_prices_and_context_window_backup.json \
        --legacy legacy/model_prices_and_context_window_backup.json

The input files are checked against pinned SHA-256 digests, so a refresh is a deliberate edit of this file.
Every price is written as an exact decimal string of USD per 1M tokens. Whatever the converter drops or
distrusts is listed under "notes" in the output, so a reader of prices.json sees it too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import tomllib
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "src/pricing/data/prices.json"
DEFAULT_CURATED = ROOT / "src/pricing/data/curated.toml"

FILE_NAME = "model_prices_and_context_window_backup.json"

SOURCES = {
    "litellm-1.82.6": {
        "package": "litellm 1.82.6 (PyPI wheel litellm-1.82.6-py3-none-any.whl)",
        "file": f"litellm/{FILE_NAME}",
        "sha256": "5632852c062ca43ea87f7c4b71ee324aa323a9cc2d2c387181ad35cccaf00668",
        "license": "MIT",
    },
    "litellm-1.74.0": {
        "package": "litellm 1.74.0 (PyPI wheel litellm-1.74.0-py3-none-any.whl)",
        "file": f"litellm/{FILE_NAME}",
        "sha256": "8da6a250eb0ff84ef2212c4c11f9d7b29b94e142f38c28a6fb60a6368a34ecfb",
        "license": "MIT",
    },
}

# litellm provider name → promptctl provider id, and the key prefix litellm puts before the model name.
PROVIDERS = {
    "openai": ("openai", ""),
    "anthropic": ("anthropic", ""),
    "gemini": ("google", "gemini/"),
    "vertex_ai-language-models": ("vertex", "vertex_ai/"),
}

# The curated set: current and recent text models of each provider and their dated snapshots. Audio,
# realtime, search, fine-tuned, TTS, image and experimental variants are left out on purpose.
INCLUDE = {
    "openai": [
        r"gpt-4o(-2024-\d\d-\d\d)?",
        r"gpt-4o-mini(-2024-07-18)?",
        r"chatgpt-4o-latest",
        r"gpt-4\.1(-mini|-nano)?(-2025-04-14)?",
        r"o1(-2024-12-17)?",
        r"o1-pro(-2025-03-19)?",
        r"o3(-2025-04-16)?",
        r"o3-mini(-2025-01-31)?",
        r"o3-pro(-2025-06-10)?",
        r"o4-mini(-2025-04-16)?",
        r"gpt-5(-mini|-nano)?(-2025-08-07)?",
        r"gpt-5-pro(-2025-10-06)?",
        r"gpt-5-chat-latest",
        r"gpt-5(\.\d)?-codex(-max|-mini)?",
        r"gpt-5\.\d(-pro|-mini|-nano)?(-20\d\d-\d\d-\d\d)?",
        r"gpt-5\.\d-chat-latest",
    ],
    "anthropic": [
        r"claude-3-haiku-20240307",
        r"claude-3-opus-20240229",
        r"claude-3-7-sonnet-20250219",
        r"claude-(sonnet|opus)-4-20250514",
        r"claude-4-(sonnet|opus)-20250514",
        r"claude-opus-4-1(-20250805)?",
        r"claude-(sonnet|haiku|opus)-4-[5-9](-20\d{6})?",
    ],
    "google": [
        r"gemini-2\.0-flash(-lite)?(-001)?",
        r"gemini-2\.5-(pro|flash|flash-lite)",
        r"gemini-2\.5-(flash|flash-lite)-preview-\d\d-\d{4}",
        r"gemini-3(\.\d)?-(pro|flash|flash-lite)-preview",
    ],
}
INCLUDE["vertex"] = INCLUDE["google"]

# Retired models that the pinned file no longer lists, taken from an older pinned litellm file. Only
# models whose rows there are consistent with the provider's published pricing are taken.
LEGACY_MODELS = {
    ("anthropic", "claude-3-5-sonnet-20240620"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-3-5-haiku-20241022"),
}

# litellm field → (section, key). Section "" is the standard tier.
FIELDS = {
    "input_cost_per_token": ("", "input"),
    "output_cost_per_token": ("", "output"),
    "cache_read_input_token_cost": ("", "cache_read"),
    "cache_creation_input_token_cost": ("", "cache_write_5m"),
    "cache_creation_input_token_cost_above_1hr": ("", "cache_write_1h"),
    "input_cost_per_token_batches": ("batch", "input"),
    "output_cost_per_token_batches": ("batch", "output"),
    "cache_read_input_token_cost_batches": ("batch", "cache_read"),
    "input_cost_per_token_flex": ("flex", "input"),
    "output_cost_per_token_flex": ("flex", "output"),
    "cache_read_input_token_cost_flex": ("flex", "cache_read"),
    "input_cost_per_token_priority": ("priority", "input"),
    "output_cost_per_token_priority": ("priority", "output"),
    "cache_read_input_token_cost_priority": ("priority", "cache_read"),
}
LONG_CONTEXT = re.compile(
    r"(?P<field>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost)_above_(?P<k>\d+)k_tokens(?P<priority>_priority)?$"
)
LONG_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
}
# Cost fields that are not per text token (audio, images, video, search calls …): out of scope.
NOT_TEXT = re.compile(r"audio|image|pixel|second|character|video|search_context|code_interpreter")

ONE_MILLION = Decimal(1_000_000)


class ConvertError(Exception):
    pass


def per_mtok(value: float, where: str) -> str:
    """A litellm USD-per-token float as an exact USD-per-1M-token decimal string."""
    # repr() is the shortest string that round-trips, i.e. the literal litellm's authors wrote.
    amount = Decimal(repr(value)) * ONE_MILLION
    if amount < 0:
        raise ConvertError(f"{where}: negative price {value!r}")
    # promptctl stores micro-dollars per 1M tokens (= pico-dollars per token); finer would not round-trip.
    if amount != amount.quantize(Decimal("0.000001")):
        raise ConvertError(f"{where}: {value!r} is finer than a micro-dollar per 1M tokens")
    return format(amount.normalize(), "f")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pinned(path: Path, source_id: str) -> dict:
    digest = sha256(path)
    if digest != SOURCES[source_id]["sha256"]:
        raise ConvertError(
            f"{path}: SHA-256 {digest} is not the pinned {source_id} file; refusing to convert"
        )
    return json.loads(path.read_text())


def included(provider: str, model: str) -> bool:
    return any(re.fullmatch(p, model) for p in INCLUDE.get(provider, []))


def split_key(key: str, entry: dict) -> tuple[str, str] | None:
    litellm_provider = entry.get("litellm_provider")
    if litellm_provider not in PROVIDERS or entry.get("mode") not in ("chat", "responses"):
        return None
    provider, prefix = PROVIDERS[litellm_provider]
    model = key[len(prefix):] if prefix and key.startswith(prefix) else key
    if "/" in model:
        return None
    return provider, model


def convert_entry(provider: str, model: str, entry: dict, notes: list[str]) -> dict:
    """One litellm entry → one row dict in prices.json's shape (before alias merging)."""
    where = f"{provider}:{model}"
    row: dict = {}
    long: dict = {}
    for field, value in entry.items():
        if "cost" not in field or NOT_TEXT.search(field) or value is None:
            continue
        if field == "output_cost_per_reasoning_token":
            if value != entry.get("output_cost_per_token"):
                notes.append(f"{where}: reasoning price {value!r} differs from output; ignored")
            continue
        if field in FIELDS:
            section, key = FIELDS[field]
            target = row if section == "" else row.setdefault(section, {})
            target[key] = per_mtok(value, f"{where}.{field}")
            continue
        m = LONG_CONTEXT.match(field)
        if m:
            threshold = int(m["k"]) * 1000
            if long.setdefault("above_input_tokens", threshold) != threshold:
                raise ConvertError(f"{where}: two long-context thresholds")
            target = long.setdefault("priority", {}) if m["priority"] else long
            target[LONG_KEYS[m["field"]]] = per_mtok(value, f"{where}.{field}")
            continue
        raise ConvertError(f"{where}: unmapped cost field {field}")
    if long:
        row["long_context"] = long
    return row


def drop_google_cache_writes(provider: str, model: str, row: dict, notes: list[str]) -> None:
    # Gemini bills context-cache storage per hour, not a per-token write premium; litellm's
    # cache_creation fields on Google entries have no documented meaning, so they are not used.
    if provider not in ("google", "vertex"):
        return
    for section in (row, row.get("long_context", {})):
        if "cache_write_5m" in section:
            del section["cache_write_5m"]
            notes.append(f"{provider}:{model}: litellm cache_creation price dropped (Google bills cache storage, not writes)")


def check_anthropic_cache_rules(model: str, row: dict, notes: list[str]) -> None:
    # Anthropic publishes cache prices as multiples of the base input price (1h write = 2x); a listed
    # 1h price that contradicts the rule is a data error in litellm, so it is dropped and the rule applies.
    base = Decimal(row["input"])
    listed = row.get("cache_write_1h")
    if listed is not None and Decimal(listed) != base * 2:
        del row["cache_write_1h"]
        notes.append(
            f"anthropic:{model}: litellm 1h cache-write price {listed} is not 2x input {row['input']}; dropped"
        )
    for key, factor in (("cache_write_5m", Decimal("1.25")), ("cache_read", Decimal("0.1"))):
        if key in row and Decimal(row[key]) != base * factor:
            notes.append(f"anthropic:{model}: {key} {row[key]} is not {factor}x input (kept as listed)")


def drop_incomplete_tiers(where: str, row: dict, notes: list[str]) -> None:
    """A tier needs both an input and an output price; a half-published tier is no tier."""
    for container in (row, row.get("long_context", {})):
        for tier in ("batch", "flex", "priority"):
            prices = container.get(tier)
            if prices is not None and not ("input" in prices and "output" in prices):
                del container[tier]
                notes.append(f"{where}: incomplete {tier} tier {prices} dropped")
    long = row.get("long_context")
    if long is not None and not ("input" in long and "output" in long):
        del row["long_context"]
        notes.append(f"{where}: incomplete long-context tier dropped")


def merge_missing(target: dict, extra: dict, where: str, notes: list[str]) -> None:
    """Adds to `target` the prices only `extra` lists; disagreements keep the target's price."""
    for key, value in extra.items():
        if isinstance(value, dict):
            merge_missing(target.setdefault(key, {}), value, f"{where}.{key}", notes)
        elif key not in target:
            target[key] = value
        elif target[key] != value:
            notes.append(f"{where}.{key}: alias lists {value}, snapshot {target[key]}; kept the snapshot's")


def current_alias_targets(curated: dict) -> dict[tuple[str, str], str]:
    """(provider, alias) → the target in force now (the mapping with no end date)."""
    targets = {}
    for alias in curated.get("alias", []):
        provider, name = alias["alias"].split(":", 1)
        if "effective_until" not in alias:
            targets[(provider, name)] = alias["target"]
    return targets


def collect(source: dict, legacy: dict | None, notes: list[str]) -> dict[tuple[str, str], dict]:
    rows: dict[tuple[str, str], dict] = {}
    for key, entry in source.items():
        split = split_key(key, entry)
        if split is None or not included(*split):
            continue
        row = convert_entry(*split, entry, notes)
        row["source"] = "litellm-1.82.6"
        if split in rows and rows[split] != row:
            raise ConvertError(f"{split}: listed twice with different prices")
        rows[split] = row
    if legacy is not None:
        for key, entry in legacy.items():
            split = split_key(key, entry)
            if split is None or split not in LEGACY_MODELS:
                continue
            if split in rows:
                raise ConvertError(f"{split}: in the current file too; drop it from LEGACY_MODELS")
            row = convert_entry(*split, entry, notes)
            row["source"] = "litellm-1.74.0"
            rows[split] = row
    return rows


def fold_aliases(rows: dict, curated: dict, notes: list[str]) -> None:
    """Alias rows are not models: their extra prices go to the snapshot they currently mean."""
    targets = current_alias_targets(curated)
    all_aliases = {tuple(a["alias"].split(":", 1)) for a in curated.get("alias", [])}
    for provider, alias in sorted(all_aliases):
        row = rows.pop((provider, alias), None)
        target = targets.get((provider, alias))
        if target is None:
            continue
        if (provider, target) not in rows:
            raise ConvertError(f"alias {provider}:{alias} → {target}: target not in the data")
        if row is None:
            continue
        mine = rows[(provider, target)]
        for key in ("input", "output"):
            if row.get(key) != mine.get(key):
                raise ConvertError(
                    f"alias {provider}:{alias} ({row.get(key)}) and {target} ({mine.get(key)}) disagree on {key}"
                )
        row.pop("source")
        merge_missing(mine, row, f"{provider}:{target}", notes)


def check_curated_targets(rows: dict, curated: dict) -> None:
    for alias in curated.get("alias", []):
        provider = alias["alias"].split(":", 1)[0]
        if (provider, alias["target"]) not in rows:
            raise ConvertError(f"curated alias {alias['alias']}: unknown target {alias['target']}")


def build(args: argparse.Namespace) -> dict:
    notes: list[str] = []
    source = load_pinned(args.source, "litellm-1.82.6")
    legacy = load_pinned(args.legacy, "litellm-1.74.0") if args.legacy else None
    curated = tomllib.loads(args.curated.read_text())
    rows = collect(source, legacy, notes)
    fold_aliases(rows, curated, notes)
    for (provider, model), row in rows.items():
        drop_google_cache_writes(provider, model, row, notes)
        if provider == "anthropic":
            check_anthropic_cache_rules(model, row, notes)
        drop_incomplete_tiers(f"{provider}:{model}", row, notes)
    check_curated_targets(rows, curated)
    curated_prices, curated_aliases = curated_entries(curated)
    used = {"litellm-1.82.6"} | ({"litellm-1.74.0"} if legacy is not None else set())
    return {
        "format": "promptctl.pricebook/v1",
        "unit": "USD per 1M tokens (exact decimal strings)",
        "retrieved": args.retrieved,
        "sources": {k: v for k, v in SOURCES.items() if k in used},
        "generated_by": "tools/pricebook/convert.py",
        "notes": sorted(set(notes)),
        "rows": [
            {"provider": provider, "model": model, **ordered(row)}
            for (provider, model), row in sorted(rows.items())
        ],
        "curated_prices": curated_prices,
        "curated_aliases": curated_aliases,
    }


KEY_ORDER = [
    "above_input_tokens", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "batch", "flex", "priority", "long_context", "source",
]


def ordered(prices: dict) -> dict:
    """Fixed key order so that a refresh diffs line by line."""
    return {
        k: ordered(prices[k]) if isinstance(prices[k], dict) else prices[k]
        for k in sorted(prices, key=KEY_ORDER.index)
    }


def curated_entries(curated: dict) -> tuple[list[dict], list[dict]]:
    """curated.toml's entries as JSON objects, so that promptctl parses one JSON file at start-up and no
    TOML. Dates become ISO strings; everything else is copied as written (a Rust test checks that the
    copy matches curated.toml)."""

    def plain(entry: dict) -> dict:
        return {
            k: (v.isoformat() if isinstance(v, dt.date) else plain(v) if isinstance(v, dict) else v)
            for k, v in entry.items()
        }

    return [plain(p) for p in curated.get("price", [])], [plain(a) for a in curated.get("alias", [])]


def render(book: dict) -> str:
    """Pretty enough to review in a diff: one row per line."""
    listed = ("rows", "curated_prices", "curated_aliases")
    head = {k: v for k, v in book.items() if k not in listed}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    for key in listed:
        items = ",\n".join("  " + json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in book[key])
        text += f',\n "{key}": [\n{items}\n ]'
    return text + "\n}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help=f"litellm 1.82.6 {FILE_NAME}")
    parser.add_argument("--legacy", type=Path, help=f"litellm 1.74.0 {FILE_NAME} (retired models)")
    parser.add_argument("--curated", type=Path, default=DEFAULT_CURATED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--retrieved", default=dt.date.today().isoformat(), help="date the wheel was downloaded")
    args = parser.parse_args()
    try:
        book = build(args)
    except ConvertError as e:
        print(f"convert.py: {e}", file=sys.stderr)
        return 1
    args.out.write_text(render(book))
    print(f"wrote {args.out}: {len(book['rows'])} rows, {len(book['notes'])} notes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

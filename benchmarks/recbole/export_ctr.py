"""Export one of our CTR datasets (the ``.npz`` of ``benchmarks/ctr.py prepare``) to RecBole's atomic
files, pre-split, so that RecBole's context-aware models train and are tested on exactly our rows.

RecBole's ``benchmark_filename: [train, valid, test]`` loads ``<token>.train.inter``,
``<token>.valid.inter`` and ``<token>.test.inter`` as they are (one row per labelled example:
``user_id:token``, ``item_id:token``, ``label:float``); the side features come from ``<token>.user``
and ``<token>.item``, joined on the ids. Ids and categories are written as our indices (tokens), so
RecBole's vocabularies are ours; index 0 (our padding) is never written. Multi-valued fields become
``token_seq`` columns without their padding.

Which side features are written (``--fields``) is a choice of the comparison, recorded in the
manifest: RecBole's own ML-1M context benchmark loads ``age, gender, occupation`` for users and
``release_year, genre`` for items (no zip), so that is the default for ``ml-1m-ctr``.

    python benchmarks/recbole/export_ctr.py --data .gpu/ml-1m-ctr.npz
    # -> runs/recbole/data/ml-1m-ctr-shortlist/{.train.inter,.valid.inter,.test.inter,.user,.item,manifest.json}

Runs in the project's environment (NumPy only); ``run_ctr.py`` then trains RecBole's models on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("recbole.export_ctr")

# Our field name -> RecBole's name in its ml-1m benchmark files (user / item side).
RECBOLE_NAMES = {"year": "release_year", "genres": "genre"}
DEFAULT_FIELDS = {"ml-1m-ctr": ["age", "gender", "occupation", "year", "genres"]}


def load_npz(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a ``benchmarks/ctr.py prepare`` file."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    if header.get("format") != "shortlist.ctr":
        raise ValueError(
            f"{path} is not a shortlist CTR dataset (header format {header.get('format')!r})."
        )
    return header, arrays


def _tokens(values: np.ndarray) -> list[str]:
    """One column of ids -> tokens; a 2-D (multi-valued) column -> space-separated non-zero ids."""
    if values.ndim == 1:
        return [str(int(v)) for v in values]
    return [" ".join(str(int(v)) for v in row if v) for row in values]


def _write(path: Path, header: list[str], columns: list[list[str]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        f.write("\t".join(header) + "\n")
        for row in zip(*columns, strict=True):
            f.write("\t".join(row) + "\n")
    os.replace(tmp, path)


def fingerprint(user: np.ndarray, item: np.ndarray, label: np.ndarray) -> str:
    """sha256 of a part's (user, item, label) rows in file order: run_ctr.py checks what RecBole loaded."""
    h = hashlib.sha256()
    for a in (user.astype(np.int64), item.astype(np.int64), label.astype(np.float32)):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def export(data: Path, out: Path, token: str, fields: list[str] | None) -> dict[str, Any]:
    header, arrays = load_npz(data)
    spec = {f["name"]: f for f in header["spec"]["fields"]}
    name = header["name"]
    fields = fields if fields is not None else DEFAULT_FIELDS.get(name)
    if fields is None:
        raise ValueError(f"Give --fields for {name!r}: no default set of side features for it.")
    user_field, item_field = header["spec"]["user_field"], "item_id"
    sides: dict[str, list[str]] = {user_field: [], item_field: []}
    for field in fields:
        f = spec.get(field)
        if f is None or f.get("source") not in sides:
            raise ValueError(
                f"--fields: {field!r} is not a side feature of {data} "
                f"(have: {sorted(n for n, s in spec.items() if s.get('source') in sides)})."
            )
        sides[f["source"]].append(field)
    folder = out / token
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    prints: dict[str, str] = {}
    for part in ("train", "valid", "test"):
        u, i, y = (arrays[f"part/{part}/{k}"] for k in ("user_id", "item_id", "label"))
        if u.min() < 1 or i.min() < 1:
            raise ValueError(f"{data}: part {part} has id 0 (padding) in its rows.")
        _write(
            folder / f"{token}.{part}.inter",
            ["user_id:token", "item_id:token", "label:float"],
            [_tokens(u), _tokens(i), [f"{float(v):g}" for v in y]],
        )
        counts[part], prints[part] = len(u), fingerprint(u, i, y)
    for source, suffix in ((user_field, "user"), (item_field, "item")):
        n = int(spec[source]["vocab_size"])
        ids = np.arange(1, n)  # every id but padding, so RecBole's vocabulary is ours
        cols, head = [_tokens(ids)], [f"{source}:token"]
        for field in sides[source]:
            values = arrays[f"lookup/{spec[field]['lookup']}"][1:n]
            kind = "token_seq" if values.ndim == 2 else "token"
            head.append(f"{RECBOLE_NAMES.get(field, field)}:{kind}")
            cols.append(_tokens(values))
        _write(folder / f"{token}.{suffix}", head, cols)
    manifest = {
        "token": token,
        "source": str(data),
        "dataset": name,
        "definition": header["spec"].get("meta", {}).get("definition"),
        "user_fields": [RECBOLE_NAMES.get(f, f) for f in sides[user_field]],
        "item_fields": [RECBOLE_NAMES.get(f, f) for f in sides[item_field]],
        "rows": counts,
        "fingerprints": prints,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the .npz of benchmarks/ctr.py prepare")
    p.add_argument("--token", help="RecBole dataset name (default: <dataset>-shortlist)")
    p.add_argument("--fields", help="comma-separated side features (default: RecBole's own set)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "recbole" / "data")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    header, _ = load_npz(args.data)
    token = args.token or f"{header['name']}-shortlist"
    fields = args.fields.split(",") if args.fields else None
    manifest = export(args.data, args.out, token, fields)
    log.info("wrote %s: %s", args.out / token, manifest["rows"])


if __name__ == "__main__":
    main()

"""The RecBole CTR export writes exactly our rows and side features in RecBole's atomic format, with
fingerprints that identify each part's rows, and rejects fields it cannot write."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from shortlist.data.ctr import load_ctr_dataset
from test_ctr_data import fixture_ratings, write_ml1m

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "recbole"))
import export_ctr


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    data = load_ctr_dataset("ml-1m-ctr", data_dir=write_ml1m(tmp_path / "ml-1m", fixture_ratings()))
    return data.save(tmp_path / "ml.npz")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def test_export_writes_our_rows_and_recbole_fields(prepared: Path, tmp_path: Path) -> None:
    manifest = export_ctr.export(prepared, tmp_path / "out", "tiny", None)
    folder = tmp_path / "out" / "tiny"
    _, arrays = export_ctr.load_npz(prepared)
    for part in ("train", "valid", "test"):
        head, rows = _read(folder / f"tiny.{part}.inter")
        assert head == ["user_id:token", "item_id:token", "label:float"]
        u, i, y = (arrays[f"part/{part}/{k}"] for k in ("user_id", "item_id", "label"))
        assert [int(r[0]) for r in rows] == u.tolist() and [int(r[1]) for r in rows] == i.tolist()
        assert [float(r[2]) for r in rows] == y.tolist()
        assert manifest["rows"][part] == len(u)
        assert manifest["fingerprints"][part] == export_ctr.fingerprint(u, i, y)
    head, users = _read(folder / "tiny.user")
    assert head == ["user_id:token", "age:token", "gender:token", "occupation:token"]
    n_users = len(arrays["lookup/age"]) - 1  # every id but padding
    assert [int(r[0]) for r in users] == list(range(1, n_users + 1))
    assert [int(r[1]) for r in users] == arrays["lookup/age"][1:].tolist()
    head, items = _read(folder / "tiny.item")
    assert head == ["item_id:token", "release_year:token", "genre:token_seq"]
    genres = arrays["lookup/genres"][1:]
    assert [r[2] for r in items] == [" ".join(str(g) for g in row if g) for row in genres]
    assert json.loads((folder / "manifest.json").read_text())["item_fields"] == [
        "release_year",
        "genre",
    ]


def test_fingerprint_changes_with_any_row() -> None:
    u, i, y = np.array([1, 2]), np.array([3, 4]), np.array([1.0, 0.0], dtype=np.float32)
    base = export_ctr.fingerprint(u, i, y)
    assert base != export_ctr.fingerprint(u, i, y[::-1].copy())
    assert base != export_ctr.fingerprint(u[::-1].copy(), i, y)


def test_unknown_field_is_an_error_naming_the_choices(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'label' is not a side feature .*have: \['age'"):
        export_ctr.export(prepared, tmp_path / "out", "tiny", ["label"])

"""CTR datasets on tiny fixtures in the official formats: ML-1M CTR (RecBole's definition) and Amazon
Beauty behaviour CTR (DIN's); the feature spec, hashing, the .npz round trip and bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import real_data_root
from shortlist.data.ctr import CTRData, CTRLoader, FeatureSpec, Field, hash_bucket, load_ctr_dataset
from shortlist.data.ctr.amazon import beauty_ctr
from shortlist.data.ctr.movielens import ml1m_ctr, recbole_split_sizes
from shortlist.data.errors import DataValidationError
from shortlist.data.loaders.amazon import load_amazon_beauty
from shortlist.data.loaders.movielens import load_ml_1m

MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n3::Heat (1995)::Action|Crime|Thriller\n4::Sabrina (1954)::Comedy\n"
USERS = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"


def write_ml1m(folder: Path, ratings: list[tuple[int, int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.dat").write_text(USERS)
    (folder / "movies.dat").write_bytes(MOVIES.encode("latin-1"))
    (folder / "ratings.dat").write_text(
        "".join(f"{u}::{i}::{r}::{978300000 + k}\n" for k, (u, i, r) in enumerate(ratings))
    )
    return folder


def fixture_ratings() -> list[tuple[int, int, int]]:
    # 3 users x 4 movies x 10 repetitions of ratings 1..5 pattern: 120 rows, 24 of them 3s
    rows = []
    for k in range(10):
        for u in (1, 2, 3):
            for i in (1, 2, 3, 4):
                rows.append((u, i, 1 + (u + i + k) % 5))
    return rows


def test_ml1m_ctr_labels_drop_3s_and_split_8_1_1(tmp_path: Path) -> None:
    ratings = fixture_ratings()
    data = ml1m_ctr(load_ml_1m(write_ml1m(tmp_path / "ml-1m", ratings)), seed=0)
    kept = [r for r in ratings if r[2] != 3]
    n = len(kept)
    assert n == 96 and data.meta["dropped_rating_3"] == 24
    assert (
        [len(data.parts[p]) for p in ("train", "valid", "test")]
        == recbole_split_sizes(n)
        == [78, 9, 9]
    )
    # labels: 4, 5 -> 1; 1, 2 -> 0, row by row
    truth = {(u, i): [] for u, i, _ in kept}
    for u, i, r in kept:
        truth[(u, i)].append(1.0 if r >= 4 else 0.0)
    raw_user = {1: 1, 2: 2, 3: 3}  # fixture users appear in order, so user_id index = raw ID
    got: dict[tuple[int, int], list[float]] = {k: [] for k in truth}
    for p in ("train", "valid", "test"):
        c = data.parts[p].columns
        for u, i, y in zip(c["user_id"], c["item_id"], c["label"], strict=True):
            got[(raw_user[int(u)], int(i))].append(float(y))
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in truth.items()}
    feats = data.features("train", np.arange(len(data.parts["train"])))
    assert set(feats) == {
        "user_id",
        "item_id",
        "gender",
        "age",
        "occupation",
        "zip",
        "genres",
        "year",
        "label",
    }
    first = int(np.flatnonzero(feats["item_id"] == 1)[0])  # Toy Story: 3 genres, 1995
    assert (feats["genres"][first] > 0).sum() == 3 and feats["genres"].shape[1] == 6
    female = feats["gender"][feats["user_id"] == 1]
    assert len(set(female.tolist())) == 1 and female[0] != feats["gender"][feats["user_id"] == 2][0]
    assert (
        feats["zip"].max() <= data.spec.field("zip").vocab_size - 1
        and data.spec.field("zip").hashed
    )


def test_ml1m_ctr_split_is_seeded(tmp_path: Path) -> None:
    data = load_ml_1m(write_ml1m(tmp_path / "ml-1m", fixture_ratings()))
    a, b, c = ml1m_ctr(data, seed=1), ml1m_ctr(data, seed=1), ml1m_ctr(data, seed=2)
    key = lambda d: d.parts["test"].columns["item_id"].tolist()  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)


def test_ml1m_partial_copy_keeps_unresolved_movies_with_unknown_genres(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "users.dat").write_text(USERS)
    (folder / "movies.dat").write_bytes(MOVIES.encode("latin-1"))
    sub = folder / "ratings_no_timestamp_Rpkg"
    sub.mkdir()
    lines = ["user_id,movie_id,rating,r_item_index,movie_id_candidates"]
    lines += [f"{u},{i},{r},{i},\n" for u, i, r in fixture_ratings() if i < 4]
    lines += ["1,-1,5,4,4|5\n", "2,-1,1,4,4|5\n"]
    (sub / "ratings_user_movie_rating_origids.csv").write_text(lines[0] + "\n" + "".join(lines[1:]))
    data = ml1m_ctr(load_ml_1m(folder))
    assert data.meta["unresolved_items"] == 1
    all_rows = np.concatenate(
        [data.parts[p].columns["item_id"] for p in ("train", "valid", "test")]
    )
    unresolved = int(all_rows.max())  # the unresolved movie is the last new item
    assert (data.lookups["genres"][unresolved] == 0).all() and data.lookups["year"][unresolved] == 0


def test_ml1m_bad_rating_names_the_value(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m", [(1, 1, 4), (2, 2, 7)])
    with pytest.raises(DataValidationError, match=r"rating must be an integer 1-5; got 7\.0"):
        ml1m_ctr(load_ml_1m(folder))


def write_beauty(folder: Path, sequences: dict[str, list[str]], cats: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_sequence_asin.txt").write_text(
        "".join(f"{u} {' '.join(s)}\n" for u, s in sequences.items())
    )
    (folder / "items_meta.jsonl").write_text(
        "".join(
            json.dumps({"asin": a, "title": a, "categories": [["Beauty", c]]}) + "\n"
            for a, c in cats.items()
        )
    )
    return folder


SEQS = {
    "ua": ["i1", "i2", "i3", "i4", "i5"],
    "ub": ["i3", "i6", "i7", "i1", "i2", "i8"],
    "uc": ["i9", "i10", "i2", "i5", "i6"],
}
CATS = {f"i{k}": ("Nails" if k % 2 else "Skin") for k in range(1, 11)}


def test_beauty_behaviour_ctr_steps_negatives_and_time_split(tmp_path: Path) -> None:
    data = load_amazon_beauty(write_beauty(tmp_path / "beauty", SEQS, CATS))
    ctr = beauty_ctr(data, max_len=3, seed=0)
    steps = sum(len(s) - 1 for s in SEQS.values())  # 4 + 5 + 4
    assert sum(len(p) for p in ctr.parts.values()) == 2 * steps
    assert len(ctr.parts["test"]) == len(ctr.parts["valid"]) == 2 * len(SEQS)
    seqs = data.sequences()
    for part in ("train", "valid", "test"):
        f = ctr.features(part, np.arange(len(ctr.parts[part])))
        c = ctr.parts[part].columns
        assert f["label"].sum() == len(f["label"]) / 2
        for r in range(len(f["label"])):
            u, t = int(c["seq_row"][r]), int(c["seq_end"][r])
            s = seqs[u]
            if part == "test":
                assert t == len(s) - 1
            elif part == "valid":
                assert t == len(s) - 2
            else:
                assert t <= len(s) - 3
            hist = f["hist_item"][r]
            assert hist.tolist() == ([0] * 3 + s[:t].tolist())[-3:]  # history s[:t], left-padded
            assert (f["hist_cate"][r] == ctr.lookups["cate"][hist]).all()
            if f["label"][r] == 1:
                assert f["item_id"][r] == s[t]
            else:
                assert f["item_id"][r] not in set(s.tolist())  # never an item the user reviewed
            assert f["cate_id"][r] == ctr.lookups["cate"][f["item_id"][r]]


def test_beauty_semantic_id_fields_and_npz_round_trip(tmp_path: Path) -> None:
    data = load_amazon_beauty(write_beauty(tmp_path / "beauty", SEQS, CATS))
    codes = np.array([[-1, -1], *[[k % 3, k % 2] for k in range(1, 11)]])
    ctr = beauty_ctr(data, max_len=4, semantic_ids=codes)
    assert {"sid0", "sid1", "hist_sid0"} <= set(ctr.spec.names())
    f = ctr.features("test", np.arange(4))
    assert (f["sid1"] == codes[f["item_id"], 1] + 1).all()
    path = ctr.save(tmp_path / "b.npz")
    again = CTRData.load(path)
    g = again.features("test", np.arange(4))
    assert again.spec.to_dict() == ctr.spec.to_dict() and all((f[k] == g[k]).all() for k in f)
    batch = next(iter(CTRLoader(again, "train", batch_size=5)))
    assert batch.num_rows == 5 and batch["hist_item"].shape == (5, 4)
    assert ctr.spec.without(["sid0"]).names() == [
        n for n in ctr.spec.names() if n not in ("sid0", "hist_sid0")
    ]


def test_beauty_short_user_is_a_clear_error(tmp_path: Path) -> None:
    data = load_amazon_beauty(write_beauty(tmp_path / "beauty", {"ua": ["i1", "i2"]}, CATS))
    with pytest.raises(
        DataValidationError, match=r"user 'ua' has 2 events; behaviour CTR needs >= 3"
    ):
        beauty_ctr(data)


def test_feature_spec_errors_and_hashing(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="derived from 'item_id', which must be declared before it"
    ):
        FeatureSpec([Field("cate", "sparse", 3, source="item_id", lookup="cate")])
    with pytest.raises(ValueError, match="kind must be one of"):
        Field("x", "embedding", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Field 'h' \(sequence\): max_len must be >= 1"):
        Field("h", "sequence", 3)
    with pytest.raises(ValueError, match="disagree on vocab_size"):
        FeatureSpec([Field("a", "sparse", 3), Field("b", "sparse", 4, vocab="a")])
    h = hash_bucket(["48067", "70072", None, "48067"], 100, salt="zip:")
    assert h[0] == h[3] and h[2] == 0 and h.min(where=h > 0, initial=100) >= 1 and h.max() <= 100
    assert hash_bucket(["48067"], 100, salt="zip:")[0] == h[0]  # stable across calls
    np.savez(tmp_path / "x.npz", codes=np.zeros(3))
    with pytest.raises(ValueError, match=r"x\.npz: not a CTR dataset written by CTRData\.save"):
        CTRData.load(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match=r"benchmarks/ctr\.py prepare"):
        CTRData.load(tmp_path / "nope.npz")
    with pytest.raises(
        ValueError, match=r"Unknown CTR dataset .ml-1m.\. Valid names: amazon-beauty-ctr, ml-1m-ctr"
    ):
        load_ctr_dataset("ml-1m")


@pytest.mark.realdata
def test_real_ml1m_ctr_counts() -> None:
    root = real_data_root()
    if root is None or not (root / "ml-1m" / "users.dat").exists():
        pytest.skip("ml-1m not found: set SHORTLIST_DATA or place it in ../shared/data/ml-1m")
    data = load_ctr_dataset("ml-1m-ctr", data_dir=root)
    assert [len(data.parts[p]) for p in ("train", "valid", "test")] == [591210, 73901, 73901]
    assert data.meta["dropped_rating_3"] == 261197

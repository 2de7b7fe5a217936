"""MovieLens loaders on fixtures in the official formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import write_ml1m_official
from shortlist.data.datasets import load_dataset
from shortlist.data.loaders.movielens import load_ml_1m, load_ml_100k
from shortlist.data.splits import leave_one_out


def test_ml100k_fixture(ml100k_dir: Path) -> None:
    data = load_ml_100k(ml100k_dir)
    assert (data.num_users, data.num_items, data.num_interactions) == (3, 4, 8)
    assert data.order == "time" and data.has_timestamps
    # user "1" rated items 2 (t=50), 1 (t=100), 3 (t=200): sorted by time
    u = int(data.users.filter(data.users["user_id"] == 1)["user"][0])
    assert data.item_ids(data.sequences()[u]).tolist() == [2, 1, 3]
    assert data.sequences("timestamp")[u].tolist() == [50, 100, 200]
    assert data.users.columns == ["user", "user_id", "age", "gender", "occupation", "zip"]
    movie1 = data.items.filter(data.items["item_id"] == 1).row(0, named=True)
    assert movie1["genres"] == ["Action"] and movie1["year"] == 1991


def test_ml1m_official_format(tmp_path: Path) -> None:
    folder = write_ml1m_official(tmp_path / "ml-1m")
    data = load_ml_1m(folder)
    assert data.order == "time" and data.meta["variant"] == "official"
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 3, 5)
    u1 = int(data.users.filter(data.users["user_id"] == 1)["user"][0])
    # ratings of user 1 by time: movie 3 (978300760), 2 (978301968), 1 (978302109)
    assert data.item_ids(data.sequences()[u1]).tolist() == [3, 2, 1]
    assert np.all(np.diff(data.sequences("timestamp")[u1]) > 0)
    amelie = data.items.filter(data.items["item_id"] == 3).row(0, named=True)
    assert amelie["title"] == "Amélie (2001)" and amelie["genres"] == ["Comedy", "Romance"]
    split = leave_one_out(data)
    # user 2 has 2 ratings (< 3): training only; user 1's test target is its latest movie (ID 1)
    assert split.test.users.tolist() == [u1]
    assert split.test.targets.tolist() == data.item_index([1]).tolist()
    assert split.valid.targets.tolist() == data.item_index([2]).tolist()


def test_ml1m_found_through_data_dir(tmp_path: Path) -> None:
    write_ml1m_official(tmp_path / "data" / "ml-1m")
    data = load_dataset("ml-1m", data_dir=tmp_path / "data", download=False)
    assert data.num_interactions == 5 and data.order == "time"

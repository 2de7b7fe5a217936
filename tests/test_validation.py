"""Every kind of bad input raises an error naming the file, the line or column, and what was expected."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from conftest import ML100K_RATINGS, write_ml100k
from shortlist.data.build import build_dataset
from shortlist.data.errors import DatasetNotFoundError, DataValidationError
from shortlist.data.loaders.amazon import load_amazon_beauty, load_amazon_scientific
from shortlist.data.loaders.generic import ColumnMapping, load_log
from shortlist.data.loaders.movielens import load_ml_1m, load_ml_100k
from shortlist.data.readers import Col, read_delimited, read_table


def test_missing_file(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    (folder / "u.user").unlink()
    with pytest.raises(DataValidationError, match=r"u\.user: file not found \(ml-100k users\)"):
        load_ml_100k(folder)


def test_empty_file(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    (folder / "u.data").write_text("")
    with pytest.raises(
        DataValidationError, match=r"u\.data: file is empty; expected ml-100k ratings"
    ):
        load_ml_100k(folder)


def test_blank_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("\n\n  \n")
    with pytest.raises(DataValidationError, match="no data lines"):
        read_delimited(path, [Col("a"), Col("b")], separator="\t")


def test_malformed_line(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    lines = (folder / "u.data").read_text().splitlines()
    lines[4] = "2\t4\t1"  # a field missing on line 5
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as exc:
        load_ml_100k(folder)
    msg = str(exc.value)
    assert msg.startswith("u.data line 5: expected 4 fields separated by tab")
    assert "(user_id, item_id, rating, timestamp), got 3" in msg


def test_mistyped_value(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    lines = (folder / "u.data").read_text().splitlines()
    lines[2] = "1\t3\tfour\t200"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataValidationError, match=r"u\.data line 3, column 'rating': expected a number, got 'four'"
    ):
        load_ml_100k(folder)


def test_bad_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n1,2,2024-01-05\n1,3,yesterday\n")
    with pytest.raises(
        DataValidationError,
        match=r"log\.csv line 3, column 'ts': expected a timestamp .* got 'yesterday'",
    ):
        load_log(path, ColumnMapping(user="user", item="item", time="ts"))


def test_iso_dates_parse(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n1,2,2024-01-05T10:00:00\n1,3,2024-01-05T09:00:00\n")
    data = load_log(path, ColumnMapping(user="user", item="item", time="ts"))
    assert data.sequences("timestamp")[0].tolist() == [1704445200, 1704448800]  # sorted by time
    assert data.item_ids(data.sequences()[0]).tolist() == [3, 2]


def test_empty_required_value(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item\n1,2\n,3\n")
    with pytest.raises(DataValidationError, match=r"log\.csv line 3, column 'user': empty value"):
        load_log(path, ColumnMapping(user="user", item="item"))


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("uid,item\n1,2\n")
    with pytest.raises(
        DataValidationError, match=r"log\.csv: missing column 'user'; found \['uid', 'item'\]"
    ):
        load_log(path, ColumnMapping(user="user", item="item"))


def test_mistyped_parquet_column(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1, 2], "item": [3, 4], "ts": [True, False]}).write_parquet(path)
    with pytest.raises(
        DataValidationError,
        match=r"log\.parquet: column 'ts' has type Boolean; expected a timestamp",
    ):
        load_log(path, ColumnMapping(user="user", item="item", time="ts"))


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match=r"log\.parquet: not a readable Parquet file"):
        load_log(path)


def test_duplicate_item_id(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    with (folder / "u.item").open("ab") as fh:
        fh.write(b"2|Again (1999)|01-Jan-1999||http://x|0|1|0\n")
    with pytest.raises(DataValidationError, match=r"u\.item line 5: duplicate item_id 2"):
        load_ml_100k(folder)


def test_duplicate_user_id(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", ML100K_RATINGS)
    with (folder / "u.user").open("a") as fh:
        fh.write("3|40|F|artist|11111\n")
    with pytest.raises(DataValidationError, match=r"u\.user line 4: duplicate user_id 3"):
        load_ml_100k(folder)


def test_unknown_item_id(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", [*ML100K_RATINGS, (3, 99, 4, 7)])
    with pytest.raises(
        DataValidationError, match=r"u\.data line 9: unknown item_id 99, not listed in u\.item"
    ):
        load_ml_100k(folder)


def test_unknown_user_id(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml", [*ML100K_RATINGS, (7, 1, 4, 7)])
    with pytest.raises(
        DataValidationError, match=r"u\.data line 9: unknown user_id 7, not listed in u\.user"
    ):
        load_ml_100k(folder)


def test_ml1m_malformed_official_line(tmp_path: Path) -> None:
    from conftest import write_ml1m_official

    folder = write_ml1m_official(tmp_path / "ml-1m")
    with (folder / "ratings.dat").open("a") as fh:
        fh.write("2::1::5\n")
    with pytest.raises(
        DataValidationError, match=r"ratings\.dat line 6: expected 4 fields separated by '::'"
    ):
        load_ml_1m(folder)


def test_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_bytes(b"1\t2\n3\t\xff\xfe\n")
    with pytest.raises(DataValidationError, match=r"x\.tsv line 2: not valid utf-8"):
        read_delimited(path, [Col("a"), Col("b")], separator="\t")


def test_sequence_file_without_items(tmp_path: Path) -> None:
    (tmp_path / "user_sequence_asin.txt").write_text("A1 B1 B2\nA2\n")
    with pytest.raises(
        DataValidationError,
        match=r"user_sequence_asin\.txt line 2: expected a user ID followed by at least one item",
    ):
        load_amazon_beauty(tmp_path)


def test_jsonl_bad_line(tmp_path: Path) -> None:
    (tmp_path / "user_sequence_asin.txt").write_text("A1 B1 B2\n")
    (tmp_path / "items_meta.jsonl").write_text(
        '{"asin": "B1", "title": "x"}\n{"asin": "B2", "title": \n'
    )
    with pytest.raises(DataValidationError, match=r"items_meta\.jsonl line 2: invalid JSON"):
        load_amazon_beauty(tmp_path)


def test_lcrec_bad_sequence(tmp_path: Path) -> None:
    (tmp_path / "Scientific.inter.json").write_text('{"0": [1, 2], "1": [3, "x"]}')
    (tmp_path / "Scientific.item.json").write_text('{"1": {"title": "a"}}')
    with pytest.raises(
        DataValidationError,
        match=r"Scientific\.inter\.json: user '1': expected a list of integer item IDs",
    ):
        load_amazon_scientific(tmp_path)


def test_build_rejects_null_ids() -> None:
    frame = pl.DataFrame({"user_id": [1, None], "item_id": [1, 2]})
    with pytest.raises(DataValidationError, match="interactions row 2: column 'user_id' is empty"):
        build_dataset("t", frame, order="sequence")


def test_build_needs_time_for_time_order() -> None:
    with pytest.raises(DataValidationError, match="order='time' needs a 'timestamp' column"):
        build_dataset("t", pl.DataFrame({"user_id": [1], "item_id": [1]}), order="time")


def test_table_with_header_only(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item\n")
    with pytest.raises(DataValidationError, match="has a header but no data rows"):
        read_table(path, [Col("user"), Col("item")])


def test_unknown_dataset_lists_names() -> None:
    from shortlist.data.datasets import load_dataset

    with pytest.raises(
        ValueError, match=r"Unknown dataset 'ml-10k'. Valid names: amazon-beauty, .*ml-100k"
    ):
        load_dataset("ml-10k")


def test_dataset_not_found_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shortlist.data.datasets import load_dataset

    monkeypatch.delenv("SHORTLIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset("microlens", data_dir=tmp_path)
    msg = str(exc.value)
    assert "Dataset 'microlens' not found: it has no public download URL" in msg
    assert str(tmp_path) in msg and "MicroLens-50k_titles.csv" in msg and "--data-dir" in msg

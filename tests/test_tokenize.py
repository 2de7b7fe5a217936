"""Item tokenization end to end (text -> embeddings -> quantizer -> semantic IDs), API and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shortlist.cli import app
from shortlist.data.synthetic import SyntheticConfig, generate
from shortlist.items.pipeline import TokenizeConfig, tokenize, write_outputs
from shortlist.items.semantic_ids import SemanticIds


def _data():
    return generate(
        SyntheticConfig(n_users=150, n_items=120, n_topics=6, n_categories=3, mean_length=12)
    )


def test_tokenize_gives_valid_unique_ids(tmp_path: Path) -> None:
    data = _data()
    cfg = TokenizeConfig(encoder_params={"dim": 16}, levels=2, codebook_size=8)
    result = tokenize(data, cfg)
    ids = result.semantic_ids
    assert ids.codes_.shape == (data.num_items + 1, 3)  # 2 levels + the de-duplication level
    full = [tuple(row) for row in ids.codes_[1:]]
    assert len(set(full)) == data.num_items  # the extra level makes every item's ID unique
    assert all(ids.item_of(code) == i + 1 for i, code in enumerate(full))
    assert result.embeddings.shape[0] == data.num_items + 1 and not result.embeddings[0].any()
    out = write_outputs(result, tmp_path / "tok")
    again = SemanticIds.load(out / "semantic_ids")
    np.testing.assert_array_equal(again.codes_, ids.codes_)
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == data.num_items and len(report["metrics"]["utilisation"]) == 2
    assert (out / "code_usage.png").read_bytes()[:4] == b"\x89PNG"


def test_items_of_the_same_topic_share_first_level_codes() -> None:
    data = _data()
    result = tokenize(data, TokenizeConfig(encoder_params={"dim": 16}, levels=2, codebook_size=6))
    topics = data.items["topic"].to_numpy()
    first = result.semantic_ids.codes_[1:, 0]
    # purity: the majority topic of each first-level code covers most of its items
    pure = sum(np.bincount(topics[first == c]).max() for c in np.unique(first))
    assert pure / len(first) > 0.8


def test_aligned_tokenization_runs() -> None:
    result = tokenize(
        _data(),
        TokenizeConfig(
            encoder_params={"dim": 16}, levels=2, codebook_size=8, align="swing", align_epochs=2
        ),
    )
    assert "align_s" in result.report["timings"]


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="The 'align' parameter of TokenizeConfig must be one of"):
        TokenizeConfig(align="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a hierarchical semantic ID"):
        TokenizeConfig(quantizer="nearest-items")


def test_cli(tmp_path: Path) -> None:
    from conftest import ML100K_RATINGS, write_ml100k

    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    out = tmp_path / "tokens"
    result = CliRunner().invoke(
        app,
        [
            "tokenize",
            "ml-100k",
            "--data-dir",
            str(folder),
            "--out",
            str(out),
            "--levels",
            "1",
            "--codebook-size",
            "2",
            "--dim",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "semantic_ids").is_dir() and (out / "report.json").exists()
    bad = CliRunner().invoke(
        app, ["tokenize", "ml-100k", "--data-dir", str(folder), "--quantizer", "vq"]
    )
    assert bad.exit_code == 2 and "Unknown quantizer 'vq'" in bad.output

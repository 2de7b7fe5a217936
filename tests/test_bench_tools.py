"""Benchmark tools: select_configs.py (one config per family, chosen by validation) and longseq_profile.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ksa_flex_tiles
import longseq_speed
import select_configs


def _row(model: str, variant: str, valid: float, test: float, protocol: str = "hstu") -> dict:
    return {
        "dataset": "ml-100k",
        "protocol": protocol,
        "model": f"shortlist {model}",
        "variant": variant,
        "metrics": {"valid_ndcg@10": valid, "ndcg@10": test},
    }


SWEEP = {
    "command": "python benchmarks/seqrec.py run ...",
    "rows": [
        _row("sasrec-d64", "seed=0", 0.20, 0.10),
        _row("sasrec-d64", "mean of 1 seeds", 0.20, 0.10),
        _row("sasrec-d128", "seed=0", 0.30, 0.01),  # best valid, worst test: still chosen
        _row("sasrec-d128", "mean of 1 seeds", 0.30, 0.01),
        # the unmasked variant must not take part in the choice
        _row("sasrec-d64", "mean of 1 seeds", 0.99, 0.99, "hstu, history not masked"),
        _row("ksa-c8", "mean of 1 seeds", 0.25, 0.20),
        {
            "dataset": "ml-100k",
            "protocol": "hstu",
            "model": "anchor: x",
            "variant": "paper",
            "metrics": {"ndcg@10": 0.5},
        },
    ],
}


def test_family_is_the_name_up_to_the_first_dash() -> None:
    assert select_configs.family("sasrec-d128-l3") == "sasrec"
    assert select_configs.family("ksa") == "ksa"


def test_choice_is_by_the_validation_metric_of_the_masked_mean_rows() -> None:
    chosen = select_configs.choose(SWEEP["rows"], ["sasrec", "ksa"], "valid_ndcg@10")
    assert chosen == {"sasrec": ("sasrec-d128", 0.30), "ksa": ("ksa-c8", 0.25)}


def test_select_renames_the_chosen_rows_to_their_family_and_notes_every_score() -> None:
    rows, _, note = select_configs.select(SWEEP, ["sasrec"], "valid_ndcg@10")
    assert [(r.model, r.variant) for r in rows] == [
        ("shortlist sasrec", "seed=0; config sasrec-d128"),
        (
            "shortlist sasrec",
            "mean of 1 seeds; config sasrec-d128, chosen by valid_ndcg@10 among 2",
        ),
    ]
    assert "sasrec-d64 0.2000" in note and "sasrec-d128 0.3000" in note


def test_a_family_without_configs_is_an_error_naming_it() -> None:
    with pytest.raises(SystemExit, match="'elastic'"):
        select_configs.choose(SWEEP["rows"], ["elastic"], "valid_ndcg@10")


def test_several_sweeps_are_one_choice_and_a_config_in_two_is_an_error(tmp_path: Path) -> None:
    import json

    later = {
        "command": "python benchmarks/seqrec.py run --name round2 ...",
        "rows": [
            _row("sasrec-d256", "seed=0", 0.35, 0.02),
            _row("sasrec-d256", "mean of 1 seeds", 0.35, 0.02),
        ],
    }
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(SWEEP))
    b.write_text(json.dumps(later))
    merged = select_configs.merge_sweeps([str(a), str(b)])
    assert select_configs.choose(merged["rows"], ["sasrec", "ksa"], "valid_ndcg@10") == {
        "sasrec": ("sasrec-d256", 0.35),
        "ksa": ("ksa-c8", 0.25),
    }
    assert merged["command"] == f"{SWEEP['command']} | {later['command']}"
    with pytest.raises(SystemExit, match="'sasrec-d64' is in both"):
        select_configs.merge_sweeps([str(a), str(a)])


def test_longseq_profile_writes_a_table_and_a_trace(tmp_path: Path) -> None:
    import longseq_profile

    argv = ["--method", "ksa", "--length", "128", "--tokens", "256", "--device", "cpu"]
    longseq_profile.main(
        [*argv, "--chunk", "16", "--steps", "1", "--warmup", "1", "--out", str(tmp_path)]
    )
    table = (tmp_path / "ksa-L128-eager.txt").read_text()
    assert table.startswith("ksa L=128 B=2") and "aten::" in table
    assert (tmp_path / "ksa-L128-eager.trace.json").stat().st_size > 0


def test_recbole_ctr_rows_per_seed_and_mean(tmp_path: Path) -> None:
    import json

    import ctr

    for seed, auc in ((0, 0.80), (1, 0.90)):
        rb = {
            "model": "DCNV2",
            "config": {"seed": seed},
            "stopped_by": "early_stopping",
            "test": {"auc": auc, "logloss": 0.3},
            "valid_auc": auc + 0.01,
            "best_epoch": 3,
        }
        (tmp_path / f"rb-s{seed}.json").write_text(json.dumps(rb))
    rows = ctr.recbole_ctr_rows("ml-1m-ctr", [str(tmp_path / "rb-*.json"), str(tmp_path / "none*")])
    assert [r.variant for r in rows] == [
        "seed=0; same split; stopped by early_stopping",
        "seed=1; same split; stopped by early_stopping",
        "mean of 2 seeds",
    ]
    assert rows[-1].model == "RecBole 1.2.1 DCNV2"
    assert rows[-1].metrics["auc"] == pytest.approx(0.85)
    assert rows[-1].metrics["valid_auc"] == pytest.approx(0.86)
    assert ctr.recbole_ctr_rows("ml-1m-ctr", []) == []
    tuned = {**rb, "config": {"seed": 0, "lr": 0.005, "overrides": {"dropout_prob": 0.1}}}
    (tmp_path / "rb-tuned.json").write_text(json.dumps(tuned))
    names = {r.model for r in ctr.recbole_ctr_rows("ml-1m-ctr", [str(tmp_path / "rb-*.json")])}
    assert names == {"RecBole 1.2.1 DCNV2", "RecBole 1.2.1 DCNV2 (lr 0.005, dropout_prob 0.1)"}


def test_longseq_quality_ratios_against_the_run_baseline_and_missing_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import longseq_quality

    part = {
        "command": "python benchmarks/seqrec.py run --name longseq_mls ...",
        "commit": "abc1234",
        "date": "2026-11-29",
        "machine": "test",
        "notes": "three seeds",
        "rows": [
            _row("sasrec", "mean of 3 seeds", 0.3, 0.0650),
            _row("sasrec", "seed=0", 0.3, 0.0700),
            _row("ksa", "mean of 3 seeds", 0.3, 0.0520),
        ],
    }
    rows, commands = longseq_quality.merge({"longseq_mls": part})
    by = {(r.model, r.variant): r.metrics for r in rows}
    ksa = by[("shortlist ksa", "mean of 3 seeds")]
    assert ksa["ndcg@10_vs_baseline_ratio"] == pytest.approx(0.8)
    assert ksa["ndcg@10_gap"] == pytest.approx(-0.013)
    assert "ndcg@10_gap" not in by[("shortlist sasrec", "seed=0")]  # seed rows keep their metrics
    assert commands == [part["command"]]

    written = {}
    monkeypatch.setattr(
        longseq_quality, "write_result", lambda name, rows, **kw: written.update(kw)
    )
    (tmp_path / "longseq_mls.json").write_text(json.dumps(part))
    newer = {**part, "commit": "def5678", "date": "2026-11-30", "machine": "newer"}
    (tmp_path / "longseq_ml100k.json").write_text(json.dumps(newer))
    argv = ["longseq_quality.py", "--from", str(tmp_path), "--why-missing", "split redesigned"]
    monkeypatch.setattr(sys, "argv", argv)
    longseq_quality.main()
    assert "not measured: longseq_synthetic: split redesigned" in written["notes"]
    assert "not measured: longseq_mls" not in written["notes"]
    # the file is dated by its newest part, whichever comes first
    extra = {k: written["extra"][k] for k in ("commit", "date", "machine")}
    assert extra == {"commit": "def5678", "date": "2026-11-30", "machine": "newer"}
    assert written["extra"]["parts"]["longseq_mls"]["commit"] == "abc1234"  # each part's own
    monkeypatch.setattr(sys, "argv", ["longseq_quality.py", "--from", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="none of the result files"):
        longseq_quality.main()


def test_longseq_quality_base_carries_the_parts_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import longseq_quality

    def part(dataset: str, test: float, command: str, notes: str) -> dict:
        rows = [
            _row("sasrec", "mean of 3 seeds", 0.3, 0.05),
            _row("ksa", "mean of 3 seeds", 0.3, test),
        ]
        for r in rows:
            r["dataset"] = dataset
        return {"command": command, "commit": "c1", "date": "2026-11-29", "machine": "m",
                "notes": notes, "rows": rows}  # fmt: skip

    ml = part("ml-100k", 0.06, "cmd ml100k", "ml notes | with a bar")
    mls = part("ml-latest-small", 0.04, "cmd mls", "mls notes")
    # a file in the format before "parts" was recorded: joined commands and notes
    rows, commands = longseq_quality.merge({"longseq_ml100k": ml, "longseq_mls": mls})
    legacy = {
        "name": "longseq_quality", "commit": "c1", "date": "2026-11-29", "machine": "m",
        "rows": [r.__dict__ for r in rows],
        "notes": "runs: " + " | ".join(commands)
        + " | notes: longseq_ml100k: ml notes | with a bar | longseq_mls: mls notes"
        + " | not measured: longseq_synthetic: no result file",
    }  # fmt: skip
    carried = longseq_quality.carried_parts(legacy, ["longseq_ml100k", "longseq_beauty"])
    assert list(carried) == ["longseq_ml100k"]  # no Beauty rows: nothing to carry
    assert carried["longseq_ml100k"]["command"] == "cmd ml100k"
    assert carried["longseq_ml100k"]["notes"] == "ml notes | with a bar"
    assert {r["dataset"] for r in carried["longseq_ml100k"]["rows"]} == {"ml-100k"}

    # --base: a new MovieLens latest-small part, ML-100k carried, the rest not measured
    new_mls = {**part("ml-latest-small", 0.06, "cmd mls 2", "mls round 9"), "date": "2026-11-30"}
    (tmp_path / "longseq_mls.json").write_text(json.dumps(new_mls))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(legacy))
    written: dict = {}
    monkeypatch.setattr(
        longseq_quality, "write_result", lambda name, rows, **kw: written.update(kw, rows=rows)
    )
    argv = ["longseq_quality.py", "--from", str(tmp_path), "--base", str(base)]
    monkeypatch.setattr(sys, "argv", argv)
    longseq_quality.main()
    parts = written["extra"]["parts"]
    assert list(parts) == ["longseq_ml100k", "longseq_mls"]
    assert parts["longseq_mls"]["command"] == "cmd mls 2"
    assert parts["longseq_ml100k"]["notes"] == "ml notes | with a bar"
    ratios = {(r.dataset, r.model): r.metrics["ndcg@10_vs_baseline_ratio"] for r in written["rows"]}
    assert ratios[("ml-latest-small", "shortlist ksa")] == pytest.approx(1.2)  # the new part's
    assert ratios[("ml-100k", "shortlist ksa")] == pytest.approx(1.2)  # carried
    assert "not measured: longseq_beauty" in written["notes"]
    assert "not measured: longseq_ml100k" not in written["notes"]
    assert written["extra"]["date"] == "2026-11-30"
    # a file with "parts" is read from them; a legacy file whose commands do not match its parts
    # is refused
    base.write_text(json.dumps({**legacy, "parts": {"longseq_ml100k": parts["longseq_ml100k"]}}))
    assert list(longseq_quality.carried_parts(json.loads(base.read_text()), ["longseq_mls"])) == []
    with pytest.raises(ValueError, match="cannot tell which is whose"):
        longseq_quality.carried_parts({**legacy, "notes": "runs: one | notes: x"}, ["longseq_mls"])


def test_keep_rows_carries_the_models_not_rerun_and_names_them(tmp_path: Path) -> None:
    import json

    from common import Row, keep_rows

    old = {
        "commit": "abc1234",
        "command": "python benchmarks/ctr.py run --name ctr_x ...",
        "rows": [
            {"dataset": "d", "protocol": "ctr", "model": "shortlist din", "variant": "seed=0",
             "metrics": {"auc": 0.5}},
            {"dataset": "d", "protocol": "ctr", "model": "shortlist can", "variant": "seed=0",
             "metrics": {"auc": 0.7}},
            {"dataset": "d", "protocol": "ctr", "model": "RecBole 1.2.1 DCNV2", "variant": "seed=0",
             "metrics": {"auc": 0.6}},
            {"dataset": "d", "protocol": "ctr", "model": "anchor: DCNV2", "variant": "paper",
             "metrics": {"auc": 0.8}},
        ],
    }  # fmt: skip
    path = tmp_path / "ctr_x.json"
    path.write_text(json.dumps(old))
    new = [
        Row("d", "ctr", "shortlist din", "seed=0", {"auc": 0.9}),
        Row("d", "ctr", "anchor: DCNV2"),
    ]
    kept, note = keep_rows(str(path), new)
    assert [(r.model, r.metrics["auc"]) for r in kept] == [
        ("shortlist can", 0.7),
        ("RecBole 1.2.1 DCNV2", 0.6),
    ]
    assert "RecBole 1.2.1 DCNV2, shortlist can kept from ctr_x.json" in note
    assert "abc1234" in note and old["command"] in note
    assert keep_rows(None, new) == ([], "")
    with pytest.raises(SystemExit, match=r"missing\.json does not exist"):
        keep_rows(str(tmp_path / "missing.json"), new)


def _speed_args(**over: object) -> argparse.Namespace:
    base = dict(
        device="cpu", tokens=64, dim=16, heads=2, chunk=4, window=2, ksa_block=128,
        ksa_span=2048, ksa_tiles="", experts=4, elastic_chunk=8, elastic_triton_chunk=16,
        elastic_decay_half_life=64.0, elastic_route_topk=2, decay_one_level_chunks=64,
        decay_scan="auto", warmup=1, repeats=1, threads=1, inductor="",
    )  # fmt: skip
    base.update(over)
    return argparse.Namespace(**base)


@pytest.mark.parametrize("method", [*longseq_speed.METHODS, "elastic-decay", "elastic-route"])
def test_speed_op_scope_feeds_every_input_of_the_attention_op(method: str) -> None:
    """The op rows time the attention alone: documented output shapes, a gradient on every input."""
    args = _speed_args()
    fn, inputs = longseq_speed.build_op(method, args, 2, 32, torch.device("cpu"), torch.float32)
    outputs = fn(*inputs)
    assert outputs[0].shape == (2, 2, 32, 8)  # (B, H, L, dh)
    if method.startswith("ksa"):
        assert outputs[1].shape == (2, 2, 8, 8)  # summaries: (B, H, ceil(L / k), dh)
    torch.autograd.backward(list(outputs), [torch.ones_like(y) for y in outputs])
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in inputs)


def test_speed_elastic_decay_is_the_elastic_sublayer_with_decay() -> None:
    args = _speed_args()
    plain = longseq_speed.build_layer("elastic", args)
    decayed = longseq_speed.build_layer("elastic-decay", args)
    assert plain.decay_rates() is None
    rates = decayed.decay_rates()
    assert rates is not None and rates.shape == (2, 4)
    # the slowest expert starts at the given half-life: lam = ln 2 / 64
    assert rates.min().item() == pytest.approx(0.6931471805599453 / 64, rel=1e-5)


def test_speed_elastic_route_is_the_elastic_sublayer_routed() -> None:
    args = _speed_args()
    routed = longseq_speed.build_layer("elastic-route", args)
    assert (routed.compress_over, routed.route_topk) == ("experts", 2)
    plain = longseq_speed.build_layer("elastic", args)
    assert (plain.compress_over, plain.route_topk) == ("events", 0)
    assert [n for n, _ in routed.named_parameters()] == [n for n, _ in plain.named_parameters()]


def test_speed_ratios_are_taken_within_a_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row's speedup is against SDPA of its own scope; protocols name the scope."""
    written: dict = {}
    monkeypatch.setattr(
        longseq_speed, "write_result", lambda name, rows, **kw: written.update(rows=rows)
    )
    res = {
        ("sublayer", "sdpa", "eager", 64): {"fwd_bwd_s": 4.0, "peak_mib": 2.0},
        ("sublayer", "ksa", "eager", 64): {"fwd_bwd_s": 2.0, "peak_mib": 1.0},
        ("op", "sdpa", "eager", 64): {"fwd_bwd_s": 3.0, "peak_mib": 2.0},
        ("op", "ksa", "eager", 64): {"fwd_bwd_s": 1.0, "peak_mib": 1.0},
    }
    args = _speed_args(name="x", compile="", scopes="sublayer,op", op_lengths="")
    longseq_speed._write(args, res)
    got = {(r.protocol, r.model): r.metrics["speedup_vs_sdpa_ratio"] for r in written["rows"]}
    assert got == {
        ("fwd+bwd, one sublayer", "sdpa"): 1.0,
        ("fwd+bwd, one sublayer", "ksa"): 2.0,
        ("fwd+bwd, attention op only", "sdpa"): 1.0,
        ("fwd+bwd, attention op only", "ksa"): 3.0,
    }


def test_speed_case_times_a_step_without_a_loss() -> None:
    """One CPU case of each scope runs and reports a positive time and the batch it used."""
    args = _speed_args()
    for scope in ("sublayer", "op"):
        res = longseq_speed.time_case("elastic", 32, args, "eager", scope)
        assert res["batch"] == 2 and res["fwd_bwd_s"] > 0


def test_speed_unknown_scope_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"--scopes: choose among \['op', 'sublayer'\]"):
        longseq_speed.main(["--device", "cpu", "--scopes", "kernel", "--lengths", "64"])


BWD_TILES = "bwd_BLOCK_M1=32,bwd_BLOCK_N1=64,bwd_BLOCK_M2=64,bwd_BLOCK_N2=32,bwd_num_warps=4,bwd_num_stages=3"


def test_speed_inductor_settings_are_parsed_and_checked() -> None:
    import torch._inductor.config as inductor_config

    before = inductor_config.coordinate_descent_tuning
    try:
        assert longseq_speed.set_inductor("coordinate_descent_tuning=True") == {
            "coordinate_descent_tuning": True
        }
        assert inductor_config.coordinate_descent_tuning is True
    finally:
        inductor_config.coordinate_descent_tuning = before
    assert longseq_speed.set_inductor("") == {}
    with pytest.raises(ValueError, match=r"'no_such_option=1' is not name=value"):
        longseq_speed.set_inductor("no_such_option=1")
    with pytest.raises(ValueError, match=r"not a Python literal"):
        longseq_speed.set_inductor("coordinate_descent_tuning=maybe")


def test_tile_variants_parse_and_reject_bad_tiles() -> None:
    got = ksa_flex_tiles.parse_variants(f"default:; small: {BWD_TILES}", 128)
    assert got == {"default": "", "small": BWD_TILES}
    assert ksa_flex_tiles.parse_variants("", 128) == ksa_flex_tiles.VARIANTS
    with pytest.raises(ValueError, match=r"expected 'name:tiles' items, got 'oops'"):
        ksa_flex_tiles.parse_variants("oops", 128)
    with pytest.raises(ValueError, match=r"--variants \(big\).*bwd_BLOCK_N1=256"):
        ksa_flex_tiles.parse_variants(f"big:{BWD_TILES.replace('N1=64', 'N1=256')}", 128)


def test_tile_sweep_times_every_variant_beside_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variant gets a row with its ratio to the SDPA row of the same process (CPU, tiny)."""
    written: dict = {}
    monkeypatch.setattr(
        ksa_flex_tiles, "write_result", lambda name, rows, **kw: written.update(rows=rows, **kw)
    )
    ksa_flex_tiles.main(
        ["--device", "cpu", "--length", "32", "--tokens", "64", "--dim", "16", "--heads", "2",
         "--chunk", "4", "--window", "2", "--mode", "eager", "--warmup", "1", "--repeats", "1",
         "--variants", f"default:;small:{BWD_TILES}", "--rounds", "3"]
    )  # fmt: skip
    rows = written["rows"]
    assert [(r.model, r.variant) for r in rows] == [
        ("sdpa", "flash"),
        ("ksa", "default"),
        ("ksa", "small"),
    ]
    sdpa_s = rows[0].metrics["fwd_bwd_s"]
    for r in rows:
        rounds = [r.metrics[f"fwd_bwd_s_round{i}"] for i in range(3)]
        assert r.metrics["rounds"] == 3 and r.metrics["fwd_bwd_s"] == sorted(rounds)[1]  # median
        assert r.metrics["speedup_vs_sdpa_ratio"] == pytest.approx(sdpa_s / r.metrics["fwd_bwd_s"])
    assert written["extra"]["variants"] == {"default": "", "small": BWD_TILES}


def test_tile_sweep_needs_a_round() -> None:
    with pytest.raises(ValueError, match=r"--rounds must be >= 1. Got 0"):
        ksa_flex_tiles.main(["--device", "cpu", "--rounds", "0"])


def test_best_tiles_takes_the_highest_ratio_over_files(tmp_path: Path) -> None:
    import json

    def result(name: str, ratios: dict[str, float]) -> Path:
        path = tmp_path / f"{name}.json"
        rows = [{"model": "sdpa", "variant": "flash", "metrics": {"speedup_vs_sdpa_ratio": 1.0}}]
        rows += [
            {"model": "ksa", "variant": v, "metrics": {"speedup_vs_sdpa_ratio": r}}
            for v, r in ratios.items()
        ]
        variants = {v: f"tiles-of-{v}" for v in ratios}
        path.write_text(json.dumps({"rows": rows, "variants": variants}))
        return path

    a = result("a", {"default": 2.6, "x": 2.8})
    b = result("b", {"y": 2.7})
    assert ksa_flex_tiles.best_tiles([str(a), str(b)]) == ("x", "tiles-of-x", 2.8)
    with pytest.raises(ValueError, match="No timed KSA row"):
        ksa_flex_tiles.best_tiles([str(result("c", {}))])


def test_speed_step_graph_needs_cuda() -> None:
    with pytest.raises(
        ValueError, match=r"--compile step-graph captures the whole step.*--device cuda"
    ):
        longseq_speed.make_step("sdpa", 32, _speed_args(), "step-graph")


def test_capture_step_warms_up_on_a_side_stream_then_captures_one_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order CUDA graph capture needs, with torch.cuda's stream and graph objects recorded."""
    import contextlib

    events: list[str] = []

    class Stream:
        def wait_stream(self, other: object) -> None:
            events.append(f"{self.name} waits")

        name = "side"

    class Current(Stream):
        name = "current"

    class Graph:
        def replay(self) -> None:
            events.append("replay")

    @contextlib.contextmanager
    def on(stream: Stream):  # type: ignore[no-untyped-def]
        events.append(f"enter {stream.name}")
        yield
        events.append(f"leave {stream.name}")

    @contextlib.contextmanager
    def capture(graph: Graph):  # type: ignore[no-untyped-def]
        events.append("capture")
        yield
        events.append("captured")

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", Current)
    monkeypatch.setattr(torch.cuda, "stream", on)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    replay = longseq_speed.capture_step(lambda: events.append("step"), warmup=2)
    assert events == [
        "side waits", "enter side", "step", "step", "leave side", "current waits",
        "capture", "step", "captured",
    ]  # fmt: skip
    replay()
    assert events[-1] == "replay"


def test_speed_graph_rows_have_no_peak_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    written: dict = {}
    monkeypatch.setattr(
        longseq_speed, "write_result", lambda name, rows, **kw: written.update(rows=rows, **kw)
    )
    res = {
        ("sublayer", "sdpa", "step-graph", 64): {"fwd_bwd_s": 4.0, "peak_mib": 2.0},
        ("sublayer", "ksa", "step-graph", 64): {"fwd_bwd_s": 1.0, "peak_mib": 1.0},
    }
    args = _speed_args(name="x", compile="default,step-graph", scopes="sublayer", op_lengths="")
    longseq_speed._write(args, res)
    rows = {r.model: r.metrics for r in written["rows"]}
    assert rows["ksa+compile(step-graph)"] == {"fwd_bwd_s": 1.0, "speedup_vs_sdpa_ratio": 4.0}
    assert "+compile(step-graph) have no peak_mib" in written["notes"]


def test_profile_summary_busy_time_is_the_union_of_intervals() -> None:
    import profile_summary

    assert profile_summary.busy_time([]) == 0.0
    # [0, 4) and [2, 5) overlap -> 5; [7, 8) adds 1; [7.5, 7.8) is inside it
    assert profile_summary.busy_time([(7, 8), (0, 4), (2, 5), (7.5, 7.8)]) == 6.0


def test_profile_summary_per_step_figures_from_a_trace(tmp_path: Path) -> None:
    import json

    import profile_summary

    events = [
        {"cat": "cpu_op", "ts": 0.0, "dur": 50.0},
        {"cat": "kernel", "ts": 100.0, "dur": 300.0, "name": "_scan_fwd_kernel_0"},
        {"cat": "kernel", "ts": 200.0, "dur": 300.0},  # overlaps: busy 400, kernel sum 600
        {"cat": "gpu_memset", "ts": 900.0, "dur": 100.0},
        {"cat": "ac2g", "ts": 5000.0, "dur": 0.0},  # neither host work nor GPU work
    ]
    (tmp_path / "ksa-L64-eager.trace.json").write_text(json.dumps({"traceEvents": events}))
    (tmp_path / "ksa-L64-eager.txt").write_text(
        "ksa L=64 B=1 D=8 H=2 eager, 2 steps, device cuda\n"
    )
    got = profile_summary.summarize(tmp_path / "ksa-L64-eager.trace.json")
    assert got == pytest.approx(
        {
            "steps": 2.0,
            "gpu_busy_ms_per_step": 0.25,  # 500 us / 2 steps
            "gpu_kernel_ms_per_step": 0.35,
            "span_ms_per_step": 0.5,  # 0 .. 1000 us
            "gpu_idle_fraction": 0.5,
        }
    )
    named = profile_summary.summarize(tmp_path / "ksa-L64-eager.trace.json", ("_scan_fwd", "x"))
    assert named["kernel_ms_per_step:_scan_fwd"] == pytest.approx(0.15)  # 300 us / 2 steps
    assert named["kernel_ms_per_step:x"] == 0.0
    (tmp_path / "ksa-L64-eager.txt").write_text("no header\n")
    with pytest.raises(ValueError, match=r"ksa-L64-eager.txt: no '<n> steps'"):
        profile_summary.summarize(tmp_path / "ksa-L64-eager.trace.json")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph capture needs a GPU")
def test_capture_step_replays_forward_and_backward_on_cuda() -> None:
    """A captured step recomputes the gradient from new input values copied into its buffers."""
    w = torch.randn(8, 4, device="cuda", requires_grad=True)
    x = torch.randn(3, 8, device="cuda")
    dy = torch.randn(3, 4, device="cuda")
    out = torch.zeros(8, 4, device="cuda")

    def step() -> None:
        (x @ w).backward(dy)
        out.copy_(w.grad)  # type: ignore[arg-type]
        w.grad = None

    replay = longseq_speed.capture_step(step, warmup=2)
    x.copy_(torch.randn(3, 8, device="cuda"))
    replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, x.T @ dy)


def test_by_length_averages_each_bucket_over_the_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import by_length
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")

    def run(name: str, recall: float, sizes: tuple[int, int, int] = (3, 0, 5)) -> None:
        buckets = [
            {"min_length": lo, "max_length": hi, "num_examples": n, "share": n / 8,
             "recall@10": recall + lo / 100, "ndcg@10": recall / 2}
            for (lo, hi), n in zip([(0, 4), (5, 9), (10, None)], sizes, strict=True)
        ]  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(
            json.dumps({"test_by_history_length": buckets})
        )

    run("a-s0", 0.1)
    run("a-s1", 0.3)
    argv = ["--group", f"a={tmp_path}/a-s*", "--dataset", "d", "--protocol", "tiger"]
    by_length.main([*argv, "--name", "by_len", "--no-rebuild"])
    rows = json.loads((tmp_path / "results" / "by_len.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == [
        "history 0-4; mean of 2 seeds",
        "history 10+; mean of 2 seeds",
    ]  # the empty bucket is left out
    assert rows[1]["metrics"]["recall@10"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    # older runs closed the last bucket at 10**9 - 1: still labelled as the open bucket
    assert by_length.bucket_label({"min_length": 200, "max_length": 10**9 - 1}) == "history 200+"
    assert by_length.bucket_label({"min_length": 200, "max_length": 499}) == "history 200-499"
    assert rows[1]["metrics"]["examples"] == 5 and rows[1]["metrics"]["share"] == 5 / 8
    run("a-s2", 0.2, sizes=(4, 0, 4))
    with pytest.raises(ValueError, match="other length buckets"):
        by_length.main([*argv, "--name", "x", "--no-rebuild"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="no 'test_by_history_length'"):
        by_length.main(["--group", f"b={tmp_path}/b", *argv[2:], "--name", "y", "--no-rebuild"])


def test_by_length_rebuckets_from_ranks_with_or_without_stored_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--edges re-makes the buckets from ranks.npz: from its stored lengths, or from --split's
    test histories (capped by the protocol) for files without them; hand-computed hit rates."""
    import numpy as np

    import by_length
    import common
    from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit
    from shortlist.eval.protocols import EvalResult
    from shortlist.eval.ranks import save_ranks

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    lengths = np.array([1, 3, 12, 30, 25])  # history lengths of the 5 test users
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    history = Jagged(np.ones(int(offsets[-1]), dtype=np.int32), offsets)
    test = EvalExamples(np.arange(5), history, np.arange(1, 6))
    ranks = np.array([0, 20, 3, 50, 9])  # hit@10: 1, 0, 1, 0, 1
    result = EvalResult(metrics={}, per_example_rank=ranks, history_lengths=lengths, num_examples=5)
    save_ranks(tmp_path / "new-s0", {"test": (test, result)})
    argv = ["--dataset", "d", "--protocol", "tiger", "--metrics", "recall@10", "--no-rebuild"]
    by_length.main(["--group", f"a={tmp_path}/new-s0", *argv, "--edges", "0,10,20", "--name", "n"])
    rows = json.loads((tmp_path / "results" / "n.json").read_text())["rows"]
    got = {r["variant"]: (r["metrics"]["recall@10"], r["metrics"]["examples"]) for r in rows}
    assert got == {
        "history 0-9; mean of 1 seeds": (0.5, 2),
        "history 10-19; mean of 1 seeds": (1.0, 1),
        "history 20+; mean of 1 seeds": (0.5, 2),
    }
    # the same file without lengths (as written before they were kept): from the split, whose
    # histories the tiger protocol caps at 20 events (30 and 25 -> 20)
    with np.load(tmp_path / "new-s0" / "ranks.npz") as data:
        old = {k: data[k] for k in data.files if not k.endswith(".lengths")}
    (tmp_path / "old-s0").mkdir()
    np.savez(tmp_path / "old-s0" / "ranks.npz", **old)
    group = ["--group", f"a={tmp_path}/old-s0", *argv, "--edges", "0,10,20,26"]
    with pytest.raises(ValueError, match=r"no history lengths .* give --split"):
        by_length.main([*group, "--name", "o"])
    split = SequenceSplit(
        protocol="tiger", num_items=5, train_users=np.arange(5), train=history,
        train_timestamps=None, valid=test, test=test, max_history=20,
    )  # fmt: skip
    split.save(tmp_path / "split.npz")
    by_length.main([*group, "--split", str(tmp_path / "split.npz"), "--name", "o"])
    rows = json.loads((tmp_path / "results" / "o.json").read_text())["rows"]
    got = {r["variant"]: r["metrics"]["examples"] for r in rows}
    assert got == {  # capped at 20, no history reaches the 26+ bucket
        "history 0-9; mean of 1 seeds": 2,
        "history 10-19; mean of 1 seeds": 1,
        "history 20-25; mean of 1 seeds": 2,
    }


def test_by_target_gap_buckets_valid_and_test_by_the_time_since_the_last_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-computed hit rates per gap bucket (the same timestamp, < 1 h, < 1 d, later), averaged
    over two seeds, with the ratio to a baseline group; and the errors."""
    import numpy as np

    import by_target_gap
    import common
    import valid_test_gap
    from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit
    from shortlist.eval.protocols import EvalResult
    from shortlist.eval.ranks import save_ranks

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    offsets = np.array([0, 2, 4, 6, 8])
    history = Jagged(np.ones(8, dtype=np.int32), offsets)
    times = Jagged(np.array([0, 10] * 4, dtype=np.int64), offsets)  # last event at t = 10
    # gaps 0 s, 1 s, 4,990 s (1 h - 1 d), 99,990 s (1 d+)
    examples = EvalExamples(
        np.arange(4), history, np.arange(1, 5),
        history_timestamps=times, target_timestamps=np.array([10, 11, 5000, 100000]),
    )  # fmt: skip
    assert by_target_gap.target_gaps(examples, "test").tolist() == [0, 1, 4990, 99990]
    assert valid_test_gap.tie_share(examples, "test") == 0.25  # one target shares its timestamp
    split = SequenceSplit(
        protocol="hstu", num_items=5, train_users=np.arange(4), train=history,
        train_timestamps=times, valid=examples, test=examples, max_history=None,
    )  # fmt: skip
    split.save(tmp_path / "split.npz")

    def run(name: str, ranks: list[int]) -> None:
        r = np.array(ranks)
        result = EvalResult(
            metrics={}, per_example_rank=r, history_lengths=np.full(4, 2), num_examples=4
        )
        save_ranks(tmp_path / name, {"valid": (examples, result), "test": (examples, result)})

    run("m-s0", [0, 20, 3, 9])  # hits 1, 0, 1, 1
    run("m-s1", [50, 0, 3, 20])  # hits 0, 1, 1, 0
    run("base-s0", [0, 0, 0, 0])  # hits everywhere
    argv = [
        "--split", str(tmp_path / "split.npz"), "--dataset", "d", "--protocol", "hstu",
        "--metrics", "hr@10", "--no-rebuild", "--group", f"m={tmp_path}/m-s*",
    ]  # fmt: skip
    by_target_gap.main(
        [*argv, "--group", f"b={tmp_path}/base-s0", "--baseline", "b", "--name", "g"]
    )
    rows = json.loads((tmp_path / "results" / "g.json").read_text())["rows"]
    got = {
        (r["model"], r["variant"]): (r["metrics"]["hr@10"], r["metrics"]["examples"]) for r in rows
    }
    for split_name in ("valid", "test"):
        assert got[("m", f"{split_name}; gap 0 s; mean of 2 seeds")] == (0.5, 1)
        assert got[("m", f"{split_name}; gap 1 s-1 h; mean of 2 seeds")] == (0.5, 1)
        assert got[("m", f"{split_name}; gap 1 h-1 d; mean of 2 seeds")] == (1.0, 1)
        assert got[("m", f"{split_name}; gap 1 d+; mean of 2 seeds")] == (0.5, 1)
        assert got[("b", f"{split_name}; gap 0 s; mean of 1 seeds")] == (1.0, 1)
    ratio = {
        r["variant"]: r["metrics"]["hr@10_vs_baseline_ratio"] for r in rows if r["model"] == "m"
    }
    assert ratio["test; gap 1 h-1 d; mean of 2 seeds"] == 1.0
    assert ratio["valid; gap 1 d+; mean of 2 seeds"] == 0.5
    # errors: unknown baseline, edges, protocol, another split's users, no timestamps
    with pytest.raises(ValueError, match="--baseline 'x' is not one of the --group names"):
        by_target_gap.main([*argv, "--baseline", "x", "--name", "e"])
    with pytest.raises(ValueError, match="--edges must start at 0 and increase"):
        by_target_gap.main([*argv, "--edges", "0,60,30", "--name", "e"])
    with pytest.raises(ValueError, match=r"--protocol 'tiger' but .* was made for 'hstu'"):
        by_target_gap.main([*argv, "--protocol", "tiger", "--name", "e"])
    other = EvalExamples(
        np.arange(1, 5), history, np.arange(1, 5), times, examples.target_timestamps
    )
    moved = SequenceSplit(
        protocol="hstu", num_items=5, train_users=np.arange(4), train=history,
        train_timestamps=times, valid=other, test=other, max_history=None,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"m-s0/ranks\.npz ranks other valid users than --split"):
        by_target_gap.group_rows("m", [tmp_path / "m-s0"], moved, [0, 1], ["hr@10"], "d")
    with pytest.raises(ValueError, match="The test examples of the split have no timestamps"):
        by_target_gap.target_gaps(EvalExamples(np.arange(4), history, np.arange(1, 5)), "test")
    assert by_target_gap.bucket_label(60, 7200) == "gap 1 min-2 h"


def test_speed_from_log_rebuilds_the_cases_a_stopped_run_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row lines in the log's own format (``_row_message`` behind the asctime) come back as the
    cases main keyed them by, seconds recomputed from tokens_per_s rather than the 4-decimal
    rounding, OOM and failed cases kept; other lines are skipped; ``--from-log`` writes them with
    a note, ratios from the same _write as a run."""
    cases = {
        ("sublayer", "sdpa", "eager", 64): {"batch": 2, "fwd_bwd_s": 0.00123456, "peak_mib": 2.5},
        ("sublayer", "ksa", "step-graph", 64): {"batch": 2, "fwd_bwd_s": 0.00041152},
        ("sublayer", "naive", "eager", 128): {"oom": True, "batch": 1},
        ("op", "elastic", "default", 64): {"failed": True},
    }
    lines = ["SingleProcess AUTOTUNE benchmarking takes 13.0 seconds"]
    for (scope, method, mode, L), res in cases.items():
        logged = dict(res)
        if "fwd_bwd_s" in res:
            logged["tokens_per_s"] = res["batch"] * L / res["fwd_bwd_s"]
        lines.append(
            "2026-11-30 07:09:02,907 " + longseq_speed._row_message(scope, method, mode, L, logged)
        )
    log = tmp_path / "speed.log"
    log.write_text("\n".join(lines) + "\n")

    got = longseq_speed.results_from_log(log)
    assert set(got) == set(cases)
    sdpa = got[("sublayer", "sdpa", "eager", 64)]
    assert sdpa["fwd_bwd_s"] == pytest.approx(0.00123456, rel=1e-8)  # the log shows 0.0012
    assert sdpa["peak_mib"] == 2.5
    assert got[("sublayer", "naive", "eager", 128)]["oom"]
    assert got[("op", "elastic", "default", 64)]["failed"]

    written: dict = {}
    monkeypatch.setattr(
        longseq_speed, "write_result", lambda name, rows, **kw: written.update(rows=rows, **kw)
    )
    longseq_speed.main(
        ["--device", "cpu", "--compile", "step-graph,default", "--scopes", "sublayer,op",
         "--from-log", str(log)]
    )  # fmt: skip
    rows = {(r.protocol, r.model, r.variant): r.metrics for r in written["rows"]}
    step = rows[("fwd+bwd, one sublayer", "ksa+compile(step-graph)", "L=64")]
    assert step["speedup_vs_sdpa_ratio"] == pytest.approx(3.0)
    assert rows[("fwd+bwd, attention op only", "elastic+compile", "L=64")]["failed"] == 1.0
    assert "stopped before its end" in written["notes"] and "4 cases" in written["notes"]

    empty = tmp_path / "empty.log"
    empty.write_text("nothing timed\n")
    with pytest.raises(ValueError, match=r"empty\.log: no timed case"):
        longseq_speed.results_from_log(empty)


def test_eval_speed_times_both_batchings_of_each_frozen_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eval_speed
    from shortlist.data.splits import leave_one_out
    from shortlist.data.synthetic import SyntheticConfig, generate

    leave_one_out(generate(SyntheticConfig(n_users=40, n_items=30))).save(tmp_path / "s.npz")
    written: dict[str, object] = {}
    monkeypatch.setattr(
        eval_speed, "write_result", lambda name, rows, **kw: written.update(name=name, rows=rows)
    )
    argv = ["eval_speed.py", "--split", str(tmp_path / "s.npz"), "--dataset", "synthetic"]
    monkeypatch.setattr(sys, "argv", [*argv, "--models", "sasrec", "--repeats", "1"])
    eval_speed.main()
    (row,) = written["rows"]  # type: ignore[misc]
    assert written["name"] == "eval_speed" and row.model == "sasrec"
    assert row.metrics["examples"] == 40 and row.metrics["ranks_equal"] == 1.0
    m = row.metrics
    assert m["speedup_ratio"] == pytest.approx(m["fixed_s"] / m["by_length_s"])


def test_speed_decay_one_level_chunks_sets_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from shortlist.ops import dispatcher

    threads = str(torch.get_num_threads())  # main sets torch's threads: keep the session's
    with pytest.raises(SystemExit):
        longseq_speed.main(
            ["--device", "cpu", "--threads", threads, "--decay-one-level-chunks", "-1"]
        )
    # a valid value is set for the run before anything is timed (--from-log with no log then fails)
    monkeypatch.setattr(dispatcher, "DECAY_ONE_LEVEL_CHUNKS", dispatcher.DECAY_ONE_LEVEL_CHUNKS)
    with pytest.raises(FileNotFoundError):
        longseq_speed.main(
            [
                "--threads",
                threads,
                "--decay-one-level-chunks",
                "7",
                "--from-log",
                "/nonexistent.log",
            ]
        )
    assert dispatcher.DECAY_ONE_LEVEL_CHUNKS == 7


def test_speed_decayed_methods_set_the_chunk_level_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """elastic-decay-torch times PyTorch's transitions, elastic-decay what --decay-scan says; both
    build the decayed layer."""
    from shortlist.ops import dispatcher

    monkeypatch.setattr(dispatcher, "DECAY_SCAN", dispatcher.DECAY_SCAN)  # restored afterwards
    for method, scan, want in (
        ("elastic-decay-torch", "auto", "torch"),
        ("elastic-decay", "triton", "triton"),
    ):
        _, B = longseq_speed.make_step(method, 16, _speed_args(decay_scan=scan))
        scan_now = dispatcher.DECAY_SCAN  # read at call time, so the step keeps it
        assert scan_now == want and B == 4
        assert longseq_speed.build_layer(method, _speed_args()).decay_logit is not None

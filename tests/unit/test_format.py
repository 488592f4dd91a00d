"""Pure format code: path validation, param encoding, metadata records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aim_parquet.errors import CorruptFileError, FormatVersionError, InvalidRunHashError
from aim_parquet.format.meta import (
    FORMAT_VERSION,
    MULTI_WRITER_FORMAT_VERSION,
    Manifest,
    RunMeta,
    SequenceInfo,
)
from aim_parquet.format.paths import (
    RepoLayout,
    canonical_context,
    generate_run_hash,
    is_segment_name,
    new_session_token,
    resolve_repo_root,
    segment_name,
    sequence_id,
    validate_run_hash,
)
from aim_parquet.format.values import (
    decode_json_value,
    encode_json_value,
    normalize_context,
    normalize_param,
)


def test_generated_hashes_are_valid_and_distinct() -> None:
    hashes = {generate_run_hash() for _ in range(1000)}
    assert len(hashes) == 1000
    assert all(validate_run_hash(h) == h for h in hashes)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0" * 23,
        "0" * 25,
        "G" * 24,
        "../" + "0" * 21,
        "/" + "0" * 23,
        None,
        12,
        "0" * 23 + "\x00",
    ],
)
def test_bad_hashes_are_refused(bad: object) -> None:
    with pytest.raises(InvalidRunHashError, match="24 lowercase hex"):
        validate_run_hash(bad)
    with pytest.raises(InvalidRunHashError):
        RepoLayout(Path("/r")).run_dir(bad)  # type: ignore[arg-type]


def test_context_identity_is_order_independent() -> None:
    assert canonical_context({"b": 1, "a": 2}) == canonical_context({"a": 2, "b": 1})
    assert sequence_id("loss", {"b": 1, "a": 2}) == sequence_id("loss", {"a": 2, "b": 1})
    assert sequence_id("loss", {}) == sequence_id("loss", None)
    assert sequence_id("loss", {"a": 1}) != sequence_id("loss", {"a": 2})
    assert sequence_id("a", {}) != sequence_id("b", {})
    assert len(sequence_id("../../x", {"k": "/etc"})) == 20


def test_segment_names_sort_in_write_order() -> None:
    token = new_session_token()
    names = [segment_name(1_000, 2, token), segment_name(1_000, 10, token), segment_name(2_000, 1)]
    assert all(is_segment_name(n) for n in names)
    assert sorted(names) == names
    assert not is_segment_name(".tmp-" + names[0])


def test_resolve_repo_root(tmp_path: Path) -> None:
    assert resolve_repo_root(tmp_path / ".aim") == tmp_path
    assert resolve_repo_root(str(tmp_path)) == tmp_path


def test_param_encoding_round_trips_non_json_values() -> None:
    value = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "b": b"\x00\xff",
        "t": (1, [2, (3,)]),
        "$aim_parquet": "user key",
        "u": "héllo \x00 ✓",
        "big": 2**70,
    }
    clean = normalize_param(value, "p")
    encoded = encode_json_value(clean)
    text = json.dumps(encoded, allow_nan=False)
    decoded = decode_json_value(json.loads(text))
    assert (
        math.isnan(decoded["nan"]) and decoded["inf"] == math.inf and decoded["ninf"] == -math.inf
    )
    assert decoded["b"] == b"\x00\xff" and decoded["t"] == [1, [2, [3]]]
    assert decoded["$aim_parquet"] == "user key" and decoded["u"] == "héllo \x00 ✓"
    assert decoded["big"] == 2**70


def test_param_rejections_name_the_key() -> None:
    with pytest.raises(TypeError, match=r"'p.x'.*set"):
        normalize_param({"x": {1, 2}}, "p")
    with pytest.raises(TypeError, match="nested deeper"):
        deep: list[object] = []
        node = deep
        for _ in range(300):
            child: list[object] = []
            node.append(child)
            node = child
        normalize_param(deep, "deep")


def test_context_rejects_bytes_and_non_finite() -> None:
    assert normalize_context(None) == {}
    assert normalize_context({"a": (1, 2)}) == {"a": [1, 2]}
    with pytest.raises(TypeError, match="bytes"):
        normalize_context({"a": b"x"})
    with pytest.raises(TypeError, match="NaN"):
        normalize_context({"a": math.nan})


def test_run_meta_round_trip_and_unknown_keys_ignored() -> None:
    info = SequenceInfo(
        "a" * 20, "loss", {"s": "t"}, "float", 3, 0, 2, 1.0, math.nan, -math.inf, 3.0
    )
    meta = RunMeta(
        hash="0" * 24, creation_time=1.5, tags=("x",), params={"p": math.inf}, sequences=(info,)
    )
    data = json.loads(meta.dumps())
    data["future_field"] = {"ignored": True}
    back = RunMeta.from_json(data)
    assert back.sequences[0].min == -math.inf and math.isnan(back.sequences[0].last)
    assert back.params == {"p": math.inf} and back.tags == ("x",)
    assert back.display_name == "Run: " + "0" * 24


def test_newer_format_version_is_refused_clearly() -> None:
    data = json.loads(RunMeta(hash="0" * 24, creation_time=0.0).dumps())
    data["format_version"] = MULTI_WRITER_FORMAT_VERSION + 1
    with pytest.raises(FormatVersionError, match="Upgrade aim_parquet"):
        RunMeta.from_json(data)


def test_multi_writer_sidecar_is_read_and_other_files_of_version_2_refused() -> None:
    data = json.loads(RunMeta(hash="0" * 24, creation_time=0.0).dumps())
    data["format_version"] = MULTI_WRITER_FORMAT_VERSION
    assert RunMeta.from_json(data).is_multi_writer
    manifest = json.loads(json.dumps(Manifest(1, (), frozenset()).to_json()))
    manifest["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(FormatVersionError):
        Manifest.from_json(manifest)


def test_corrupt_sidecar_is_a_clear_error() -> None:
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        RunMeta.loads(b"{not json", "sidecar X")
    with pytest.raises(CorruptFileError, match="invalid field"):
        RunMeta.from_json({"format_version": 1, "hash": "x"})


def test_manifest_round_trip() -> None:
    from aim_parquet.format.meta import CompactedFile

    seg = "a" * 20 + "/" + segment_name(5, 1)
    m = Manifest(2, (CompactedFile("compacted/m.parquet", "metrics", 10, 100),), frozenset({seg}))
    assert Manifest.from_json(m.to_json()) == m

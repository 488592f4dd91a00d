"""The object endpoints of `aim-parquet up` (images, audio, figures, texts, distributions, run
logs and records, damaged runs), through a real HTTP client against the real server process,
checked against the SDK's answer to the same query."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.ui.api.binary import decode
from tests.ui.conftest import UiServer, start_server, stop_server
from tests.ui.objects_repo import ObjectsRepo, make_objects_repo

TIMEOUT = httpx.Timeout(30.0)
# the repository has a damaged run on purpose; the SDK warns about it on every query
pytestmark = pytest.mark.filterwarnings("ignore:aim_parquet. skipping damaged run:RuntimeWarning")


@pytest.fixture(scope="module")
def objects_repo(tmp_path_factory: pytest.TempPathFactory) -> ObjectsRepo:
    return make_objects_repo(tmp_path_factory.mktemp("objects-repo"))


@pytest.fixture(scope="module")
def objects_server(objects_repo: ObjectsRepo) -> Iterator[UiServer]:
    server = start_server(objects_repo.root)
    yield server
    code, err = stop_server(server)
    assert code == 0, err


@pytest.fixture
def http(objects_server: UiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://localhost:{objects_server.port}", timeout=TIMEOUT) as c:
        yield c


def sdk_objects_at(sequences: Any, step: int | None) -> dict[tuple[str, str], list[Any]]:
    """What the listing shows, computed with the SDK: per (run, name), the objects at the latest
    step at or before `step` (the last step when None)."""
    out = {}
    for seq in sequences:
        steps, values = seq.values.sparse_list()
        chosen = [i for i, s in enumerate(steps) if step is None or s <= step]
        if not chosen:
            continue
        value = values[chosen[-1]]
        out[(seq.run.hash, seq.name)] = value if isinstance(value, list) else [value]
    return out


def test_images_listing_matches_the_sdk(http: httpx.Client, objects_repo: ObjectsRepo) -> None:
    repo = aim.Repo(str(objects_repo.root))
    for query, step in [
        ("", None),
        ("images.name == 'samples'", 10),
        ("", 0),
        ("run.hparams.lr > 1", None),
    ]:
        answer = http.get("/api/images", params={"q": query, "step": step}).json()
        expected = sdk_objects_at(repo.query_images(query), step if step is not None else 10**9)
        assert answer["count"] == sum(len(v) for v in expected.values()), (query, step)
        shown = {(s["run"], s["name"]): s for s in answer["sequences"] if s["records"]}
        assert set(shown) == set(expected), (query, step)
        for key, images in expected.items():
            captions = [r["caption"] for r in shown[key]["records"]]
            assert captions == [img.caption for img in images]
            assert [r["width"] for r in shown[key]["records"]] == [img.width for img in images]
    answer = http.get("/api/images", params={"q": "images.name == 'samples'"}).json()
    assert answer["steps"] == [0, 10, 20] and answer["step"] == 20
    assert [d["hash"] for d in answer["damaged"]] == [objects_repo.damaged_sidecar]


def image_url(
    http: httpx.Client, run: str, name: str, index: int = 0, step: int | None = None
) -> tuple[str, dict[str, Any]]:
    answer = http.get("/api/images", params={"step": step}).json()
    seq = next(s for s in answer["sequences"] if s["run"] == run and s["name"] == name)
    return f"/api/objects/{run}/{seq['seq']}/{seq['step']}/{index}", seq


def test_thumbnails_are_made_on_the_server_with_caching_headers(
    http: httpx.Client, objects_repo: ObjectsRepo
) -> None:
    from PIL import Image

    url, seq = image_url(http, objects_repo.vision, "samples", index=3)
    thumb = http.get(url, params={"size": 40, "v": seq["version"]})
    assert thumb.status_code == 200 and thumb.headers["content-type"] in ("image/webp", "image/png")
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert max(img.size) == 64  # asked for 40, rounded up to a size cached for all
    assert thumb.headers["cache-control"] == "private, max-age=31536000, immutable"
    again = http.get(
        url,
        params={"size": 40, "v": seq["version"]},
        headers={"if-none-match": thumb.headers["etag"]},
    )
    assert again.status_code == 304 and not again.content
    stale = http.get(url, params={"size": 40, "v": "an older version"})
    assert stale.headers["cache-control"] == "no-cache" and stale.content == thumb.content
    original = http.get(url)
    run = aim.Repo(str(objects_repo.root)).get_run(objects_repo.vision)
    images = run.get_image_sequence("samples", {"subset": "train"})
    steps, values = images.values.sparse_list()
    assert original.content == values[steps.index(seq["step"])][3].data
    assert original.headers["content-type"] == "image/png"
    tiny_url, _ = image_url(http, objects_repo.plain, "tiny")
    tiny = http.get(tiny_url, params={"size": 64})  # no larger than asked: sent as stored
    stored = aim.Repo(str(objects_repo.root)).get_run(objects_repo.plain).get_image_sequence("tiny")
    assert tiny.content == stored.values.sparse_list()[1][0].data


def test_undecodable_image_and_bad_addresses(http: httpx.Client, objects_repo: ObjectsRepo) -> None:
    url, _ = image_url(http, objects_repo.plain, "broken")
    broken = http.get(url, params={"size": 128})
    assert broken.status_code == 422
    assert "not in any picture format" in broken.json()["message"]
    seq = url.split("/")[4]
    run = objects_repo.vision
    for path, status in [
        (
            f"/api/objects/{run}/{seq}/0/99",
            404,
        ),  # no such object (that sequence is the plain run's)
        (f"/api/objects/{run[:-1]}X/{seq}/0/0", 400),
        (f"/api/objects/{run}/not-a-seq-id/0/0", 400),
        (f"/api/objects/{run}/{seq}/zero/0", 400),
        (f"/api/objects/{run}/..%2F..%2Frun.json/0/0", 404),  # never a path: no route matches
        (f"/api/objects/{run}/{seq}/0/0?size=big", 400),
        (f"/api/objects/{'0' * 24}/{seq}/0/0", 404),
    ]:
        response = http.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.json()["message"]


def test_audio_figure_text_and_distribution_objects(
    http: httpx.Client, objects_repo: ObjectsRepo
) -> None:
    run = aim.Repo(str(objects_repo.root)).get_run(objects_repo.vision)
    audios = http.get("/api/audios").json()
    clip = audios["sequences"][0]
    assert audios["count"] == 1 and clip["records"][0]["caption"] == "tone 5"
    body = http.get(f"/api/objects/{clip['run']}/{clip['seq']}/5/0")
    assert body.headers["content-type"] == "audio/wav"
    audio_seq = run.get_audio_sequence("clips")
    assert body.content == audio_seq.values.sparse_list()[1][-1].data
    figures = http.get("/api/figures", params={"step": 0}).json()
    fig = figures["sequences"][0]
    served = http.get(f"/api/objects/{fig['run']}/{fig['seq']}/0/0").json()
    assert served["layout"]["title"]["text"] == "figure 0 · ünï"
    dists = http.get("/api/distributions")
    header, read = decode(dists.content)
    weights = next(s for s in header["sequences"] if s["name"] == "weights")
    dist_seq = run.get_distribution_sequence("weights")
    steps, values = dist_seq.values.sparse_list()
    assert read(weights["steps"]).tolist() == steps
    counts = read(weights["counts"]).astype(int)
    last = read(weights["weights"])[-counts[-1] :]
    np.testing.assert_allclose(last, values[-1].weights, rtol=1e-6)
    heat = read(weights["heat"]["values"]).reshape(len(steps), weights["heat"]["bins"])
    np.testing.assert_allclose(heat.sum(axis=1), [v.weights.sum() for v in values], rtol=1e-4)
    assert header["sequences"][1]["name"] == "constant"  # one value repeated: one bin holds it all
    one = http.get(f"/api/objects/{objects_repo.vision}/{weights['seq']}/{steps[-1]}/0").json()
    assert one["weights"] == values[-1].weights.tolist()


def test_texts_search_and_pages(http: httpx.Client, objects_repo: ObjectsRepo) -> None:
    repo = aim.Repo(str(objects_repo.root))
    everything = [
        (s.run.hash, step, t.data)
        for s in repo.query_texts("")
        for step, t in zip(*s.values.sparse_list(), strict=True)
    ]
    answer = http.get("/api/texts").json()
    assert answer["total"] == len(everything) == 13
    found = http.get("/api/texts", params={"search": "ÜNÏ label=2"}).json()
    expected = [t for _, _, t in everything if "ünï" in t.lower() and "label=2" in t.lower()]
    assert [r["text"] for r in found["rows"]] == sorted(
        expected, key=lambda t: int(t.split()[1][:-1])
    )
    page = http.get("/api/texts", params={"offset": 10, "limit": 2}).json()
    assert page["total"] == 13 and len(page["rows"]) == 2 and page["offset"] == 10
    assert http.get("/api/texts", params={"limit": "many"}).status_code == 400


def test_run_logs_records_and_damage(http: httpx.Client, objects_repo: ObjectsRepo) -> None:
    run = objects_repo.vision
    logs = http.get(
        f"/api/runs/{run}/logs", params={"offset": 6, "limit": 3, "search": "GREEN"}
    ).json()
    assert logs["total"] == 300 and logs["lines"][1] == [7, "green text 緑"]  # escape codes gone
    assert logs["matches"] == [7] and logs["match_count"] == 1
    tail = http.get(f"/api/runs/{run}/logs", params={"offset": 299, "limit": 50}).json()
    assert tail["lines"] == [[299, "epoch 2 batch 299 loss=0.0503"]]
    none = http.get(f"/api/runs/{objects_repo.plain}/logs").json()
    assert none["total"] == 0
    records = http.get(f"/api/runs/{run}/log-records").json()["records"]
    assert [(r["level_name"], r["message"]) for r in records] == [
        ("INFO", "training started"),
        ("WARNING", "loss is NaN at step 50"),
        ("ERROR", "could not save checkpoint: disk full ✗"),
    ]
    assert records[0]["extra"] == {"lr": 0.01}
    damaged = http.get(f"/api/runs/{objects_repo.damaged_sidecar}")
    assert damaged.status_code == 500 and damaged.json()["error"] == "damaged"
    salvage = http.get(f"/api/runs/{objects_repo.damaged_sidecar}/salvage").json()
    assert salvage["damaged"] is True and "not valid JSON" in salvage["reason"]
    assert [(s["name"], s["count"]) for s in salvage["sequences"]] == [("loss", 1)]
    assert http.get(f"/api/runs/{run}/salvage").json() == {"damaged": False}
    header, _ = decode(
        http.get(
            "/api/metrics/search", params={"q": f"run.hash == '{objects_repo.damaged_segment}'"}
        ).content
    )
    assert [c["title"] for c in header["charts"]] == ["good"]  # the readable series is still drawn
    assert [(u["name"], u["context"]) for u in header["unreadable"]] == [
        ("loss", {"subset": "train"})
    ]


def test_object_queries_go_through_the_safe_interpreter(http: httpx.Client) -> None:
    for path in ("/api/images", "/api/audios", "/api/figures", "/api/texts", "/api/distributions"):
        bad = http.get(path, params={"q": "images.name =="})
        assert bad.status_code == 400 and "^" in bad.json()["message"], path
        evil = http.get(path, params={"q": "__import__('os').system('true')"})
        assert evil.status_code == 400, path


def test_report_command_writes_one_self_contained_file(
    objects_repo: ObjectsRepo, tmp_path: Path
) -> None:
    import base64
    import re
    import subprocess

    from tests.conftest import PYTHON, python_env

    out = tmp_path / "report ü.html"
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "report", "--repo", str(objects_repo.root), "--query",
         "metric.name == 'loss'", "--images", "--output", str(out)],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(out.resolve()) in done.stdout and "images" in done.stdout
    text = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)  # nothing to fetch
    payload = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert payload is not None
    assert "<" not in payload.group(1)
    data = json.loads(payload.group(1))
    header, _ = decode(base64.b64decode(data["series"]))
    sdk = list(aim.Repo(str(objects_repo.root)).query_metrics("metric.name == 'loss'"))
    readable = [m for m in sdk if m.run.hash != objects_repo.damaged_segment]
    assert header["series_count"] == len(sdk) and sum(
        len(c["series"]) for c in header["charts"]
    ) == len(readable)
    assert sorted(data["runs"]["columns"]["hash"]) == sorted({m.run.hash for m in sdk})
    assert data["images"]["count"] == 10 and all(
        i["src"].startswith("data:image/") for i in data["images"]["items"] if "error" not in i
    )
    only = tmp_path / "only.html"
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "report", "--repo", str(objects_repo.root), "--runs",
         "run.experiment == 'plain'", "--output", str(only)],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = only.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.S).group(1))  # type: ignore[union-attr]
    header, _ = decode(base64.b64decode(data["series"]))
    assert data["runs"]["columns"]["hash"] == [objects_repo.plain]
    assert {s["run"] for c in header["charts"] for s in c["series"]} == {objects_repo.plain}
    bad = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "report", "--repo", str(objects_repo.root), "--query", "metric.name ==",
         "--output", str(tmp_path / "bad.html")],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert bad.returncode == 1 and "^" in bad.stderr and not (tmp_path / "bad.html").exists()


def test_bundler_joins_modules_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    from aim_parquet.ui.report import bundle

    (tmp_path / "a.js").write_text(
        "export function twice(x) { return 2 * x; }\nexport const K = 3;\n"
    )
    (tmp_path / "b.js").write_text(
        'import { twice, K as k } from "./a.js";\nexport class B { v() { return twice(k); } }\n'
    )
    code = bundle(["a.js", "b.js"], tmp_path)
    assert 'const { twice, K: k } = __modules["a.js"];' in code and "return { B };" in code
    with pytest.raises(ValueError, match="not bundled before it"):
        bundle(["b.js", "a.js"], tmp_path)
    (tmp_path / "c.js").write_text('import * as all from "./a.js";\n')
    with pytest.raises(ValueError, match="cannot read"):
        bundle(["a.js", "c.js"], tmp_path)


def test_distributions_answer_is_bounded_however_many_sequences_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aim_parquet.storage import open_repo
    from aim_parquet.ui.api import distributions as dist_api
    from aim_parquet.ui.api.state import UiState
    from tests.ui.conftest import quiet_run

    run = quiet_run(tmp_path)
    rng = np.random.default_rng(3)
    for k in range(8):
        for step in range(60):
            run.track(
                aim.Distribution(rng.normal(k, 1, 200), bin_count=32), name=f"w{k}", step=step
            )
    run.close()
    monkeypatch.setattr(dist_api, "MAX_VALUES", 8 * 2 * 128 * 20)  # 20 steps each at 128 bins
    header, read = decode(dist_api.distributions(UiState(open_repo(tmp_path)), "", 400, 128))
    assert len(header["sequences"]) == 8
    for seq in header["sequences"]:
        steps = read(seq["steps"])
        assert seq["total_steps"] == 60 and len(steps) == 20
        assert steps[0] == 0 and steps[-1] == 59  # the first and the last step are always in


def test_empty_sequences_are_listed_without_objects(tmp_path: Path) -> None:
    """Sequences the catalogue names but that hold no point yet (a writer that created them and
    died before its first flush): every listing answers, with nothing to show for them."""
    from aim_parquet.storage import open_repo
    from aim_parquet.ui.api.distributions import distributions
    from aim_parquet.ui.api.objects import listing, texts
    from aim_parquet.ui.api.state import UiState
    from tests.ui.objects_repo import make_empty_sequences_run

    make_empty_sequences_run(tmp_path)
    state = UiState(open_repo(tmp_path))
    for kind, name in [("images", "pics"), ("audios", "clips"), ("figures", "figs")]:
        answer = listing(state, kind, "", None)
        assert answer["count"] == 0 and answer["steps"] == [] and answer["step"] is None
        assert [(s["name"], s["records"], s["last_step"]) for s in answer["sequences"]] == [
            (name, [], None)
        ]
    assert texts(state, "", "", 0, 10)["total"] == 0
    header, read = decode(distributions(state, "", 400, 128))
    (hist,) = header["sequences"]
    assert (
        hist["total_steps"] == 0
        and read(hist["steps"]).size == 0
        and read(hist["heat"]["values"]).size == 0
    )


def test_report_never_writes_through_a_planted_temp_name(
    objects_repo: ObjectsRepo, tmp_path: Path
) -> None:
    """A link left (or planted) at the name a report used as its fixed temp file: the report
    replaces its output through a temp file of its own, and the link's target is untouched."""
    import subprocess

    from tests.conftest import PYTHON, python_env

    decoy = tmp_path / "decoy.txt"
    decoy.write_text("not yours", encoding="utf-8")
    out = tmp_path / "shared.html"
    out.write_text("an older report", encoding="utf-8")
    (tmp_path / ".shared.html.tmp").symlink_to(decoy)
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "report", "--repo", str(objects_repo.root),
         "--runs", "run.experiment == 'plain'", "--output", str(out)],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert decoy.read_text(encoding="utf-8") == "not yours"
    text = out.read_text(encoding="utf-8")
    assert text.rstrip().endswith("</html>") and text.count('id="report-data"') == 1

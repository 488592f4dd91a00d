"""Figure: plotly figures by duck typing, clear errors when plotly is missing."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from aim_parquet.errors import AimParquetError, UnsupportedValueError
from aim_parquet.objects import Figure, InvalidObjectError, OptionalDependencyError

PLOTLY_JSON = json.dumps({"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}], "layout": {}})


class FakePlotlyFigure:
    """Quacks like plotly.graph_objects.Figure."""

    def __init__(self, text: Any = PLOTLY_JSON) -> None:
        self.text = text

    def to_json(self) -> Any:
        return self.text

    def to_plotly_json(self) -> dict[str, Any]:
        return dict(json.loads(self.text))


class FakeMatplotlibFigure:
    def savefig(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("Figure must not render a matplotlib figure itself")


@pytest.fixture
def without_plotly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every `import plotly...` fail, whether or not plotly is installed."""
    for name in ("plotly", "plotly.io", "plotly.tools"):
        monkeypatch.setitem(sys.modules, name, None)


def test_plotly_like_figure_round_trip() -> None:
    figure = Figure(FakePlotlyFigure())
    assert figure.data == PLOTLY_JSON
    record = figure.to_record()
    assert record.payload == PLOTLY_JSON.encode("utf-8")
    assert record.meta["source"] == "plotly"
    assert record.meta["format"] == "raw_json"
    assert record.meta == figure.json()
    again = Figure.from_record(record.payload, record.meta)
    assert again == figure
    assert again.data == PLOTLY_JSON
    assert again.version == figure.version
    assert repr(again).startswith("Figure(source='plotly'")


def test_bytes_from_to_json_are_decoded() -> None:
    assert Figure(FakePlotlyFigure(PLOTLY_JSON.encode())).data == PLOTLY_JSON


def test_to_json_must_return_text() -> None:
    with pytest.raises(UnsupportedValueError, match="not a JSON str"):
        Figure(FakePlotlyFigure(text=42))


@pytest.mark.parametrize("value", [None, {"data": []}, PLOTLY_JSON, 3])
def test_non_figures_are_refused(value: object) -> None:
    with pytest.raises(UnsupportedValueError, match="plotly or matplotlib figure") as info:
        Figure(value)
    assert isinstance(info.value, TypeError)


def test_equality() -> None:
    assert Figure(FakePlotlyFigure()) == Figure(FakePlotlyFigure())
    assert Figure(FakePlotlyFigure()) != Figure(FakePlotlyFigure(json.dumps({"data": []})))
    assert Figure(FakePlotlyFigure()) != PLOTLY_JSON


def test_matplotlib_without_plotly_says_pip_install(without_plotly: None) -> None:
    with pytest.raises(OptionalDependencyError, match="pip install plotly") as info:
        Figure(FakeMatplotlibFigure())
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, AimParquetError)


def test_to_plotly_figure_without_plotly_says_pip_install(without_plotly: None) -> None:
    figure = Figure(FakePlotlyFigure())
    with pytest.raises(OptionalDependencyError, match="pip install plotly"):
        figure.to_plotly_figure()


def test_bad_payload() -> None:
    with pytest.raises(InvalidObjectError, match="not UTF-8"):
        Figure.from_record(b"\xff", {})


# ----------------------------------------------------------------------------- real plotly


def test_real_plotly_figure_round_trip() -> None:
    plotly = pytest.importorskip("plotly")
    import plotly.graph_objects as go

    original = go.Figure(data=[go.Bar(x=["a", "b"], y=[1, 3])])
    figure = Figure(original)
    assert figure.version == plotly.__version__
    record = figure.to_record()
    rebuilt = Figure.from_record(record.payload, record.meta).to_plotly_figure()
    assert isinstance(rebuilt, go.Figure)
    assert json.loads(rebuilt.to_json()) == json.loads(original.to_json())


def test_real_matplotlib_figure_is_converted_or_refused_clearly() -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure as MplFigure

    mpl_figure = MplFigure()
    mpl_figure.add_subplot().plot([0, 1, 2], [2, 0, 1])
    try:
        figure = Figure(mpl_figure)
    except InvalidObjectError as exc:
        # plotly's converter does not support every matplotlib release; the message must say so.
        assert "track it as Image(fig) instead" in str(exc)
    else:
        assert json.loads(figure.data)["data"]

"""CAS figures: a y-axis, the cut threshold, the predicted segments under the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from wsl_video import plot
from wsl_video.plot import CasRow, cas_figure, plot_cas


def _patches(axis, gid):
    """Flat [start, end, start, end, ...] of the rectangles drawn with ``gid``."""
    spans = sorted((p.get_x(), p.get_x() + p.get_width()) for p in axis.patches if p.get_gid() == gid)
    return [value for span in spans for value in span]


def _cas_axes(figure):
    return [axis for axis in figure.axes if axis.get_gid() == "cas"]


def _strip_axes(figure):
    return [axis for axis in figure.axes if axis.get_gid() == "segments"]


def test_cas_figure():
    import matplotlib.pyplot as plt

    cas = np.array([0.0, 0.1, 0.6, 0.8, 0.7, 0.1, 0.0, 0.3, 0.4, 0.0])
    rows = [CasRow("MAAN", cas, detections=[(1.28, 3.2, 0.7), (4.48, 5.76, 0.3)], thresholds=[0.2]),
            CasRow("STPN", cas * 0.5, detections=[(1.28, 3.2, 0.35)], thresholds=[0.2, 0.1])]
    figure = cas_figure(rows, 0.64, ground_truth=[(1.0, 3.0)], duration=6.4, title="video — Class")
    try:
        figure.canvas.draw()
        axes, strips = _cas_axes(figure), _strip_axes(figure)
        assert len(axes) == len(strips) == 2
        for axis, strip, row in zip(axes, strips, rows):
            # a readable y-axis: ticks with labels and an axis label
            low, high = axis.get_ylim()
            labels = [label.get_text() for label, tick in zip(axis.get_yticklabels(), axis.get_yticks())
                      if low <= tick <= high and label.get_visible()]
            assert len(labels) >= 2 and all(labels) and axis.get_ylabel() == "CAS"
            # the cut threshold(s): dashed horizontal lines at fraction x max
            dashed = sorted(line.get_ydata()[0] for line in axis.lines if line.get_linestyle() == "--")
            assert dashed == pytest.approx(sorted(t * row.cas.max() for t in row.thresholds))
            # predicted segments under the ground truth, in the strip above the CAS
            expected = [value for s, e, _ in sorted(row.detections) for value in (s, e)]
            assert _patches(strip, "detection") == pytest.approx(expected)
            assert _patches(strip, "ground_truth") == pytest.approx([1.0, 3.0])
            detection_y = max(p.get_y() for p in strip.patches if p.get_gid() == "detection")
            truth_y = min(p.get_y() for p in strip.patches if p.get_gid() == "ground_truth")
            assert detection_y < truth_y  # the detections lane lies under the ground-truth lane
            assert strip.get_title(loc="left") == row.label
            assert strip.get_title(loc="right") == f"dashed: CAS cut at {', '.join(map(str, row.thresholds))} × max"
    finally:
        plt.close(figure)
    many = CasRow("DELU", cas, thresholds=list(np.linspace(0.1, 0.9, 10)))  # ten cuts: summarised, rounded
    figure = cas_figure([many], 0.64, duration=6.4)
    try:
        title = _strip_axes(figure)[0].get_title(loc="right")
        assert title == "dashed: CAS cut at 10 levels from 0.1 to 0.9 × max"
    finally:
        plt.close(figure)


def test_cas_figure_without_ground_truth(tmp_path):
    """Several detected classes of one video without annotations (e.g. a user's own video)."""
    import matplotlib.pyplot as plt

    rows = [CasRow("HighJump", np.linspace(0, 1, 8), detections=[(2.0, 5.0, 0.9)], thresholds=[0.2]),
            CasRow("LongJump", np.linspace(1, 0, 8))]
    figure = cas_figure(rows, 0.64)
    try:
        for strip in _strip_axes(figure):
            assert _patches(strip, "ground_truth") == []
        assert _patches(_strip_axes(figure)[0], "detection") == pytest.approx([2.0, 5.0])
        # an empty detections lane says so; a lane with detections does not
        empty = [[text.get_text() for text in strip.texts if text.get_gid() == "no_detections"]
                 for strip in _strip_axes(figure)]
        assert empty == [[], ["none of this class"]]
    finally:
        plt.close(figure)
    plot_cas(tmp_path / "cas.png", rows, 0.64, title="my_video")
    assert (tmp_path / "cas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cas_figure_draws_another_cut_curve_on_its_own_axis():
    """A method that cuts another curve (CO2-Net's attention): that curve on a right-hand axis, its levels on it."""
    import matplotlib.pyplot as plt

    from wsl_video.methods.base import CutCurve

    cas = np.array([0.0, 0.1, 0.6, 0.8, 0.7, 0.1, 0.0, 0.3, 0.4, 0.0])
    attention = np.array([0.1, 0.2, 0.9, 0.95, 0.8, 0.3, 0.1, 0.5, 0.6, 0.2])
    cut = CutCurve("fused attention", attention, (0.3, 0.5), (0.3, 0.5))
    figure = cas_figure([CasRow("co2net + topk_mean", cas, [(1.28, 3.2, 0.7)], cut=cut)], 0.64, duration=6.4)
    try:
        (axis,), (strip,) = _cas_axes(figure), _strip_axes(figure)
        (twin,) = [a for a in figure.axes if a.get_gid() == "cut_curve"]
        assert not [line for line in axis.lines if line.get_linestyle() == "--"]  # no cut drawn on the CAS
        assert sorted(line.get_ydata()[0] for line in twin.lines if line.get_linestyle() == "--") == [0.3, 0.5]
        (curve,) = [line for line in twin.lines if line.get_linestyle() == "-"]
        np.testing.assert_allclose(curve.get_ydata(), attention)
        np.testing.assert_allclose(curve.get_xdata(), (np.arange(10) + 0.5) * 0.64)
        assert twin.get_ylabel() == "fused attention" and twin.get_ylim()[1] > 0.95
        assert strip.get_title(loc="right") == "dashed: fused attention cut at 0.3, 0.5"
    finally:
        plt.close(figure)


def test_cas_figure_says_when_a_cas_has_no_cut():
    """A CAS whose maximum is not positive gets no proposals from the shared rule: no line, and the title says so."""
    import matplotlib.pyplot as plt

    figure = cas_figure([CasRow("basnet + topk_mean", -np.linspace(0.1, 0.2, 8), thresholds=[0.1, 0.2])], 0.64)
    try:
        (axis,), (strip,) = _cas_axes(figure), _strip_axes(figure)
        assert not [line for line in axis.lines if line.get_linestyle() == "--"]
        assert strip.get_title(loc="right") == "CAS cut at 0.1, 0.2 × max: no level, its maximum is ≤ 0"
        assert axis.get_ylim()[0] < -0.2
    finally:
        plt.close(figure)


def test_cas_figure_shows_negative_logits_and_their_cuts():
    """W-TALC cuts raw logits at min + f (max - min): the axis reaches below zero, the levels sit there."""
    import matplotlib.pyplot as plt

    from wsl_video.methods.base import CutCurve

    logits = np.array([-3.0, -2.5, 1.0, 2.0, 1.5, -2.0, -3.0, -1.0])
    cut = CutCurve("CAS", logits, (-0.5,), (0.5,), "min + {} × (max − min)")
    figure = cas_figure([CasRow("wtalc + topk_mean", logits, cut=cut)], 0.64)
    try:
        (axis,), (strip,) = _cas_axes(figure), _strip_axes(figure)
        low, high = axis.get_ylim()
        assert low < -3.0 and high > 2.0
        assert [line.get_ydata()[0] for line in axis.lines if line.get_linestyle() == "--"] == [-0.5]
        assert strip.get_title(loc="right") == "dashed: CAS cut at min + 0.5 × (max − min)"
    finally:
        plt.close(figure)


@pytest.mark.parametrize("method", ["maan", "wtalc", "basnet", "co2net", "delu"])
def test_cut_curve_levels_give_the_method_detections(method):
    """Every method's cut curve and levels are what its own detections cut: the runs of the curve above each
    level are exactly the detected segments (all classes kept, no suppression)."""
    from wsl_video.config import RunConfig
    from wsl_video.inference import VideoPrediction
    from wsl_video.methods import get_method
    from wsl_video.methods.wtalc import MIN_SNIPPETS

    config = RunConfig()
    config.model.method, config.data.dataset = method, "thumos14-sim"
    inference = config.resolved().inference
    inference.nms, inference.max_detections, inference.class_threshold = "none", None, 0.0
    if method == "wtalc":
        inference.cas_thresholds = [0.3, 0.6]  # two cuts of logits that are mostly negative
    rng = np.random.default_rng(0)
    length, classes, seconds = 40, 3, 0.5
    cas = rng.normal(-1.0, 1.0, (length, classes)) if method == "wtalc" else rng.uniform(0, 1, (length, classes))
    prediction = VideoPrediction(rng.uniform(0.2, 1.0, classes), cas, rng.uniform(0, 1, length))
    runner = get_method(method)
    detections = runner.localize(prediction, seconds, inference)
    shortest = MIN_SNIPPETS if method == "wtalc" else 1
    for class_id in range(classes):
        cut = runner.cut_curve(prediction, class_id, inference)
        assert list(cut.settings) == pytest.approx(inference.cas_thresholds) and len(cut.levels) == len(cut.settings)
        expected = set()
        for level in cut.levels:
            above = np.concatenate([[False], np.asarray(cut.values) > level, [False]])
            edges = np.flatnonzero(above[1:] != above[:-1])
            expected |= {(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2]) if b - a >= shortest}
        found = {(round(start / seconds), round(end / seconds)) for c, start, end, _ in detections if c == class_id}
        assert expected and found == expected


def test_cut_curve_of_a_method_with_its_own_rule_and_no_curve_is_unknown():
    """A plugin that overrides localize but not cut_curve gets no cut drawn, rather than the shared rule's."""
    from wsl_video.config import RunConfig
    from wsl_video.inference import VideoPrediction
    from wsl_video.methods import VideoMethod

    class OwnRule(VideoMethod):
        def localize(self, prediction, seconds_per_snippet, config, duration=None):
            return []

    inference = RunConfig().resolved().inference
    prediction = VideoPrediction(np.ones(2), np.ones((5, 2)), None)
    assert OwnRule().cut_curve(prediction, 0, inference) is None
    assert VideoMethod().cut_curve(prediction, 0, inference).levels == pytest.approx([0.2])


def test_exception():
    with pytest.raises(ValueError, match="at least one"):
        cas_figure([], 0.64)
    with pytest.raises(ValueError, match="seconds_per_snippet"):
        cas_figure([CasRow("a", np.ones(3))], 0.0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from wsl_video.config import RunConfig
    from wsl_video.training import train

    config = RunConfig()
    config.data.dataset = "thumos14-sim"
    config.data.sim = {"videos": 8, "feature_dim": 8}
    config.train.iterations = 40
    config.train.batch_size = 4
    config.train.device = "cpu"
    run = tmp_path_factory.mktemp("plot") / "run"
    train(config.resolved(), run, progress=False)
    return run


def test_plot_runs_draws_the_run_detections(run_dir, tmp_path, monkeypatch):
    """plot_runs draws each run's detections of the plotted class and its CAS threshold."""
    from wsl_video.config import load_config
    from wsl_video.detections import load_detections

    drawn = {}
    real = plot.plot_cas

    def capture(path, rows, seconds_per_snippet, **kwargs):
        drawn.update(rows=rows, **kwargs)
        real(path, rows, seconds_per_snippet, **kwargs)

    monkeypatch.setattr(plot, "plot_cas", capture)
    results, _ = load_detections(run_dir / "detections.json")
    video = sorted(results)[0]
    chosen = plot.plot_runs([run_dir], video, tmp_path / "cas.png")
    (row,) = drawn["rows"]
    expected = sorted((d["segment"][0], d["segment"][1], d["score"]) for d in results[video] if d["label"] == chosen)
    assert expected and np.allclose(np.array(sorted(row.detections)), np.array(expected))
    fractions = load_config(run_dir / "config.yaml").inference.cas_thresholds
    assert row.cut.name == "CAS" and list(row.cut.settings) == fractions
    assert list(row.cut.levels) == pytest.approx([f * row.cas.max() for f in fractions])
    assert drawn["ground_truth"] is not None
    assert (tmp_path / "cas.png").is_file()


def test_detection_colour_is_explained_by_a_colour_bar():
    """Darker is a higher score, on one scale for every row, and a colour bar says so."""
    import matplotlib.pyplot as plt

    cas = np.linspace(0, 1, 10)
    rows = [CasRow("MAAN", cas, detections=[(0.5, 1.5, 0.8), (2.0, 3.0, 0.2)]),
            CasRow("STPN", cas, detections=[(0.5, 1.5, 0.4)])]
    figure = cas_figure(rows, 0.64)
    try:
        bars = [axis for axis in figure.axes if axis.get_gid() == "score_colorbar"]
        assert len(bars) == 1 and "detection score" in bars[0].get_ylabel()
        assert bars[0].get_ylim() == pytest.approx((0.0, 0.8))

        def darkness(axis, start):
            patch = next(p for p in axis.patches if p.get_gid() == "detection" and p.get_x() == start)
            return 1 - sum(patch.get_facecolor()[:3]) / 3

        first, second = _strip_axes(figure)
        assert darkness(first, 0.5) > darkness(second, 0.5) > darkness(first, 2.0)  # 0.8 > 0.4 > 0.2
        assert darkness(first, 2.0) > 0.1  # a low score stays visible on white
    finally:
        plt.close(figure)
    relative = cas_figure(rows, 0.64, shared_scores=False)  # rows of different methods: each row's own best
    try:
        (bar,) = [axis for axis in relative.axes if axis.get_gid() == "score_colorbar"]
        assert "its row's best" in bar.get_ylabel() and bar.get_ylim() == pytest.approx((0.0, 1.0))
        first, second = _strip_axes(relative)
        assert darkness(first, 0.5) == pytest.approx(darkness(second, 0.5))  # both rows' best: the darkest
        assert darkness(first, 0.5) > darkness(first, 2.0)
    finally:
        plt.close(relative)
    no_detections = cas_figure([CasRow("x", cas)], 0.64)
    try:
        assert not [axis for axis in no_detections.axes if axis.get_gid() == "score_colorbar"]
    finally:
        plt.close(no_detections)


def test_distinct_path_labels():
    assert plot.distinct_path_labels(["out/maa/seed0", "out/topk_mean/seed0"]) == ["maa/seed0", "topk_mean/seed0"]
    assert plot.distinct_path_labels(["a/r1", "b/r2"]) == ["r1", "r2"]
    assert plot.distinct_path_labels(["x/r", "y/r", "z"]) == ["x/r", "y/r", "z"]
    assert plot.distinct_path_labels(["r", "r"]) == ["r (1)", "r (2)"]
    assert plot.distinct_path_labels(["/runs/r", "/runs/r"]) == ["/runs/r (1)", "/runs/r (2)"]  # one root slash


def _run_with(tmp_path, name, method, aggregator):
    from wsl_video.config import RunConfig, save_config
    from wsl_video.run import CONFIG_FILE

    config = RunConfig()
    config.model.method, config.model.aggregator = method, aggregator
    folder = tmp_path / name
    folder.mkdir(parents=True)
    save_config(config, folder / CONFIG_FILE)
    return folder


def test_run_labels_name_method_and_pooling(tmp_path):
    maan = _run_with(tmp_path, "a/seed0", "maan", "maa")
    mean = _run_with(tmp_path, "b/seed0", "maan", "mean")
    wtalc = _run_with(tmp_path, "c/seed0", "wtalc", "topk_mean")
    wtalc_maa = _run_with(tmp_path, "d/seed0", "wtalc", "maa")
    assert plot._run_labels([maan, mean]) == ["maa", "mean"]  # MAAN alone: the paper's aggregator names
    assert plot._run_labels([wtalc, wtalc_maa, maan]) == ["wtalc + topk_mean", "wtalc + maa", "maan + maa"]
    # the same method and pooling twice (two seeds, say): the paths tell them apart, not the folder name alone
    other_seed = _run_with(tmp_path, "e/seed0", "wtalc", "maa")
    assert plot._run_labels([wtalc_maa, other_seed]) == ["d/seed0", "e/seed0"]

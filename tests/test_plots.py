"""The chapters' plotting helpers: they draw, print what they drew, and return the numbers they used."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from longctx_lab.attention.measure import Measurement, recorded_benchmark  # noqa: E402
from longctx_lab.course.plots import attention_scaling_demo  # noqa: E402


@pytest.mark.slow  # two measurement processes
def test_attention_scaling_demo_measures_draws_and_prints(capsys):
    result = attention_scaling_demo([512, 1024], impls=("naive", "tiled"), head_dim=8, repeats=1, threads=1)
    out = capsys.readouterr().out
    runs = result["runs"]
    assert set(runs) == {"naive", "tiled"} and all(isinstance(m, Measurement) for rs in runs.values() for m in rs)
    assert [m.seq_len for m in runs["naive"]] == [512, 1024]
    assert "with 1 torch thread(s)" in out and f"grows as n^{result['p_naive']:.2f}" in out
    assert "tiled / naive at n = 1024" in out
    fig = plt.gcf()
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)
    plt.close(fig)


def test_recorded_benchmark():
    info = recorded_benchmark("attention-cpu.json")  # the copy shipped with the package, always there
    assert set(info) == {"device", "date", "command"} and info["command"].startswith("longctx-lab bench")
    for bad in ("no-such-file.json", "../x.txt"):
        with pytest.raises(ValueError, match="shipped with longctx_lab .*attention-cpu.json"):
            recorded_benchmark(bad)


def test_rope_explorer_static_figure(capsys, monkeypatch):
    from longctx_lab.course.plots import draw_rope_scheme, rope_explorer

    monkeypatch.setenv("LONGCTX_FRONTEND", "static")
    fig, axes = plt.subplots(1, 2)
    info = draw_rope_scheme(axes, "yarn", 8.0, 4096)
    assert info["attention_factor"] == pytest.approx(0.1 * __import__("math").log(8.0) + 1)
    assert info["unseen"] >= 0 and f"{info['unseen']} pairs out of range" == axes[1].get_title()
    plt.close(fig)
    assert rope_explorer(static=(("linear", 8.0), ("yarn", 32.0))) is False  # no live front end: no sliders
    out = capsys.readouterr().out
    assert "linear, factor 8:" in out and "yarn, factor 32:" in out
    plt.close("all")

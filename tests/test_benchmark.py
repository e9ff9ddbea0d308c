"""pipeline.apps.benchmark (`make bench`): rounds merged and interleaved, FLOPs counted, the report's
verdicts; the real rows timed in this process at a tiny size (no timing is asserted)."""
import dataclasses

import pytest
import torch

from pipeline.apps import bench_report, step_timing
from pipeline.apps import benchmark as bench
from pipeline.config.loading import load_params
from tests.tiny_project import DATA_SEED


def _round(steps, mean_gb, max_gb, growth, breakdown, flops=None):
    result = {"step_seconds": steps, "median_step_seconds": sorted(steps)[len(steps) // 2],
              "mem_cpu_step_peak_rss_mean_gb": mean_gb, "mem_cpu_step_peak_rss_max_gb": max_gb,
              "rss_growth_gb": growth, "breakdown_ms": breakdown, "generator_parameters": 7}
    if flops is not None:
        result["gflop_per_step"] = flops
    return result


def test_merge_rounds_pools_the_steps_and_keeps_the_worst_memory():
    merged = step_timing.merge_rounds([
        _round([1.0, 5.0, 2.0], 3.0, 3.5, 1.25, {"G_forward": 10.0, "data": 2.0}, flops=4.5),
        _round([4.0, 3.0, 9.0], 4.0, 3.25, 1.5, {"G_forward": 20.0})])
    assert merged["step_seconds"] == [1.0, 5.0, 2.0, 4.0, 3.0, 9.0]
    assert merged["median_step_seconds"] == 3.5          # median of the six, not of the two
    assert merged["best_step_seconds"] == 1.0
    assert merged["round_median_seconds"] == [2.0, 4.0]
    assert merged["mem_cpu_step_peak_rss_mean_gb"] == 3.5
    assert merged["mem_cpu_step_peak_rss_max_gb"] == 3.5
    assert merged["rss_growth_gb"] == 1.5
    assert merged["breakdown_ms"] == {"G_forward": 15.0, "data": 1.0}
    assert list(merged["breakdown_ms"]) == ["G_forward", "data"]  # largest part first
    assert merged["gflop_per_step"] == 4.5 and merged["generator_parameters"] == 7


def test_rows_take_turns_and_count_flops_in_the_first_round_only(monkeypatch):
    calls = []

    def fake_process(function, *args, count_flops):
        calls.append((args[0], count_flops))
        return _round([0.5, 0.25, 0.75], 1.0, 1.0, 0.5, {}, flops=1.0 if count_flops else None)

    monkeypatch.setattr(step_timing, "_in_fresh_process", fake_process)
    merged = step_timing.run_interleaved({"a": (None, ("a",)), "b": (None, ("b",))}, rounds=3)
    assert calls == [("a", True), ("b", True), ("a", False), ("b", False), ("a", False),
                     ("b", False)]
    assert merged["a"]["gflop_per_step"] == 1.0 and len(merged["b"]["step_seconds"]) == 9


def test_timer_counts_the_flops_of_the_first_step_by_hand():
    a, b = torch.ones(4, 5), torch.ones(5, 3)
    timer = step_timing.StepTimer(torch.device("cpu"), parts=False, count_flops=True)
    a @ b
    timer.step_done()
    a @ b.T.T @ torch.ones(3, 8)                          # the second step is not counted
    timer.step_done()
    assert timer.gflop_first_step == pytest.approx(2 * 4 * 5 * 3 / 1e9)


def test_rows_timed_in_this_process(monkeypatch, vgg_weights):
    """The real row code (models, trainer, timer, FLOP counter), in this process at 32x16 (on
    the tests' one thread, with a VGG19 weights file instead of a random-init stand-in built
    for each of the 8 timed runs)."""
    monkeypatch.setattr(step_timing, "_in_fresh_process",
                        lambda function, *args, **kwargs: function(*args, **kwargs))
    params = load_params("params.yaml")
    params = dataclasses.replace(  # the tiny world's data seed: its 4 maps at 32x16 have boxes
        params, train=dataclasses.replace(params.train, cpu_threads=1),
        loss=dataclasses.replace(params.loss, vgg_weights_path=vgg_weights),
        data=dataclasses.replace(params.data, seed=DATA_SEED))
    result = bench.benchmark(params, "cityscapes", ["pix2pixhd", "mex", "amex", "mex_canvas"],
                             width=32, height=16, steps=3, images=4, rounds=2)
    rows = result["rows"]
    assert result["rounds"] == 2 and result["portable"] is not None
    for values in rows.values():
        assert len(values["step_seconds"]) == 2 and len(values["round_median_seconds"]) == 2
        assert values["median_step_seconds"] > 0 and values["breakdown_ms"]["G_backward"] > 0
    # the expansion losses add discriminator passes to the same generator and VGG19
    assert rows["pix2pixhd"]["flops_vs_pix2pixhd"] == 1.0
    assert 1.0 < rows["mex"]["flops_vs_pix2pixhd"] < rows["amex"]["flops_vs_pix2pixhd"]
    assert rows["mex"]["discriminator_parameters"] > rows["amex"]["discriminator_parameters"]
    # mex_canvas: the same D_j, run as one grouped network on zero-padded crops (more FLOPs)
    assert rows["mex_canvas"]["discriminator_parameters"] == rows["mex"]["discriminator_parameters"]
    assert rows["mex_canvas"]["flops_vs_pix2pixhd"] > rows["mex"]["flops_vs_pix2pixhd"]
    assert rows["mex_canvas"]["breakdown_ms"]["mex.canvas_network_forward"] > 0
    assert "mex.discriminators.0_forward" not in rows["mex_canvas"]["breakdown_ms"]
    markdown = bench_report.bench_markdown({"sizes": {"demo": result}})
    assert "2 rounds (the rows taking turns)" in markdown
    assert "- mex / pix2pixhd = " in markdown and "- amex / pix2pixhd = " in markdown


def _paper_and_demo(reference_ratio):
    def size(name):
        rows = {name: {"median_step_seconds": seconds * 1.5, "best_step_seconds": seconds,
                       "gflop_per_step": flops, "generator_parameters": 1,
                       "discriminator_parameters": 1}
                for name, seconds, flops in (("pix2pixhd", 2.0, 10.0), ("mex", 2.4, 10.5),
                                             ("amex", 2.8, 15.0))}
        for values in rows.values():
            values.update(bench.step_ratios(values, rows["pix2pixhd"], "pix2pixhd"))
        reference = {"median_step_seconds": 2.0 / reference_ratio,
                     "best_step_seconds": 2.0 / reference_ratio, "gflop_per_step": 10.0,
                     "generator_parameters": 1, "discriminator_parameters": 1}
        return {"dataset": "cityscapes", "width": 64, "height": 32, "device": "cpu",
                "torch": "x", "model": {}, "steps": 5, "warmup_steps": 2, "rounds": 1,
                "portable": name == "demo", "isa_used": "AVX2", "rows": rows,
                "reference_pix2pixhd": reference,
                "pix2pixhd_best_step_vs_reference": reference_ratio,
                "pix2pixhd_median_step_vs_reference": 1.5 * reference_ratio,
                "pix2pixhd_flops_vs_reference": 1.0}
    return {"sizes": {"demo": size("demo"), "paper": size("paper")}}


def test_report_judges_each_target_on_the_best_step_and_the_reference_at_paper_size_only():
    markdown = bench_report.bench_markdown(_paper_and_demo(0.75))
    demo, paper = markdown.split("(paper size)")
    assert "portable CPU kernels (AVX2)" in demo and "native CPU kernels (AVX2)" in paper
    assert "NVIDIA's = 0.75 (target ≤ 0.8): the target is for the paper size" in demo
    assert "NVIDIA's = 0.75 (target ≤ 0.8): met; median steps 1.12, FLOPs 1.00×" in paper
    assert "- mex / pix2pixhd = 1.20 (target ≤ 1.25): met; median steps 1.20, FLOPs 1.05×" \
        in paper
    assert "- amex / pix2pixhd = 1.40 (target ≤ 1.35): NOT met; median steps 1.40, FLOPs " \
        "1.50×" in paper
    assert "| amex | 2800.0 | 4200.0 | 1.40 / 1.40 | 15.0 | 1.50 |" in paper
    assert "NOT met" in bench_report.bench_markdown(_paper_and_demo(0.85)).split("(paper size)")[1]

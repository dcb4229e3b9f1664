"""The benchmark reports the median of repeated end-to-end runs, and a failure is never
hidden behind a successful repeat."""

from bench.pipeline_bench import median_run


def test_the_median_run_is_reported_whole():
    runs = [
        {"seconds": 30.0, "stages": {"train": 1}},
        {"seconds": 10.0, "stages": {"train": 2}},
        {"seconds": 20.0, "stages": {"train": 3}},
    ]
    assert median_run(runs) == {"seconds": 20.0, "stages": {"train": 3}}


def test_an_even_count_takes_the_upper_middle():
    assert median_run([{"seconds": 4.0}, {"seconds": 1.0}])["seconds"] == 4.0


def test_any_failed_repeat_is_reported_as_the_result():
    runs = [{"seconds": 10.0}, {"name": "e2e-ours", "error": "exit 1", "peak_rss_mib": 1.0}, {"seconds": 12.0}]
    assert median_run(runs)["error"] == "exit 1"

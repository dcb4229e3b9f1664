from vitpipeline.rules.counts import tally
from vitpipeline.rules.validate import OK


def test_tally_counts_usable_quarantined_and_converted():
    rows = [
        ("s3://b/a/1.jpg", "a", OK, "RGB"),
        ("s3://b/a/2.png", "a", OK, "L"),
        ("s3://b/b/3.png", "b", OK, "CMYK"),
        ("s3://b/b/4.png", "b", OK, "L"),
        ("s3://b/b/bad.jpg", "b", "corrupt image: truncated", ""),
        ("s3://b/a/tiny.png", "a", "too small: 4x4 (validation.minSide 8)", "RGB"),
    ]
    t = tally(*zip(*rows, strict=True), listed=9, unlabeled=3)
    assert t.counts == {
        "listed": 9,
        "unlabeled": 3,
        "read": 6,
        "usable": 4,
        "quarantined": 2,
        "converted": {"CMYK": 1, "L": 2},
    }
    assert t.quarantined == [
        {"path": "s3://b/a/tiny.png", "reason": "too small: 4x4 (validation.minSide 8)"},
        {"path": "s3://b/b/bad.jpg", "reason": "corrupt image: truncated"},
    ]
    assert sorted(t.usable) == sorted((p, label) for p, label, r, _ in rows if r == OK)


def test_tally_of_nothing_usable():
    t = tally(["x.jpg"], ["a"], ["not a decodable image: UnidentifiedImageError"], [""], listed=1, unlabeled=0)
    assert t.usable == [] and t.counts["usable"] == 0 and t.counts["quarantined"] == 1

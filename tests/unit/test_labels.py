import pytest

from vitpipeline.errors import InputError
from vitpipeline.rules.labels import ImageFile, Labeled, assign_labels, limit_per_class, parse_labels_csv


def files(source, label, *names):
    return [ImageFile(f"{source}/{n}", source, label) for n in names]


def test_source_label_wins_then_parent_folder_then_unlabeled():
    images = files("s3://b/dogs", "dog", "a.jpg", "sub/b.jpg") + files("s3://b/all", None, "cat/c.jpg", "loose.jpg")
    labeled, unlabeled = assign_labels(images, None)
    assert labeled == [
        Labeled("s3://b/dogs/a.jpg", "dog"),
        Labeled("s3://b/dogs/sub/b.jpg", "dog"),
        Labeled("s3://b/all/cat/c.jpg", "cat"),
    ]
    assert unlabeled == ["s3://b/all/loose.jpg"]


def test_csv_joins_by_path_not_position():
    images = files("s3://b/imgs", None, "1.jpg", "2.jpg", "3.jpg")
    # Rows deliberately in another order than the listing, one by full URI, one relative.
    csv = parse_labels_csv("path,label\n3.jpg,fish\ns3://b/imgs/1.jpg,dog\n2.jpg,cat\n", "path", "label")
    labeled, unlabeled = assign_labels(images, csv)
    assert {x.uri: x.label for x in labeled} == {
        "s3://b/imgs/1.jpg": "dog",
        "s3://b/imgs/2.jpg": "cat",
        "s3://b/imgs/3.jpg": "fish",
    }
    assert unlabeled == []


def test_images_missing_from_csv_are_unlabeled():
    images = files("s3://b/imgs", None, "1.jpg", "2.jpg")
    labeled, unlabeled = assign_labels(images, {"1.jpg": "dog"})
    assert [x.uri for x in labeled] == ["s3://b/imgs/1.jpg"]
    assert unlabeled == ["s3://b/imgs/2.jpg"]


def test_csv_naming_unknown_images_is_an_error():
    images = files("s3://b/imgs", None, "1.jpg")
    with pytest.raises(InputError, match=r"data.labelsCsv: 2 path\(s\) name no image.*ghost.jpg"):
        assign_labels(images, {"1.jpg": "dog", "ghost.jpg": "cat", "nope.jpg": "x"})


@pytest.mark.parametrize(
    "text, words",
    [
        ("file,label\na.jpg,dog\n", "pathColumn: column 'path' not in the CSV (columns: file, label)"),
        ("path,cls\na.jpg,dog\n", "labelColumn: column 'label'"),
        ("path,label\na.jpg,\n", "line 2 has an empty path or label"),
        ("path,label\na.jpg,dog\na.jpg,cat\n", "two labels"),
    ],
)
def test_bad_csv(text, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_labels_csv(text, "path", "label")


def test_limit_per_class_is_seeded_and_stable():
    items = [Labeled(f"u{i:03d}", "a" if i % 3 else "b") for i in range(60)]
    one = limit_per_class(items, 5, seed=1)
    assert one == limit_per_class(list(reversed(items)), 5, seed=1)
    assert sum(x.label == "a" for x in one) == 5 and sum(x.label == "b" for x in one) == 5
    assert one != limit_per_class(items, 5, seed=2)
    assert len(limit_per_class(items, None, seed=1)) == 60

"""A storage error becomes one line naming the config field, the object and S3's reason
(vitpipeline/rules/failures.py), from the texts pyarrow and boto3 really raise (recorded
against moto's server behind the fault proxy)."""

from __future__ import annotations

import pytest

from vitpipeline.rules.failures import error_text, field_of, storage_failure

URIS = {
    "output.uri": "s3://runs/out",
    "model.name": "tiny-vit",
    "data.sources[0].uri": "s3://data/digits",
    "data.sources[1].uri": "s3://data/digits-more/",
}

PYARROW_UPLOAD = (
    "When initiating multiple part upload for key 'out/r1/checkpoints/checkpoint_000000/model.safetensors' "
    "in bucket 'runs': AWS Error ACCESS_DENIED during CreateMultipartUpload operation: injected by the test"
)
PYARROW_HEAD = (
    "When reading information for key 'digits/3/a.png' in bucket 'data': AWS Error ACCESS_DENIED "
    "during HeadObject operation: No response body."
)
BOTO_GET = (
    "cannot read s3://data/digits/3/a.png: An error occurred (AccessDenied) when calling the "
    "GetObject operation: injected by the test"
)
BOTO_PUT = (
    "cannot write s3://runs/out/r1/summary.json: An error occurred (AccessDenied) when calling the "
    "PutObject operation: injected by the test"
)


@pytest.mark.parametrize(
    "text, line",
    [
        (
            PYARROW_UPLOAD,
            "output.uri: s3://runs/out/r1/checkpoints/checkpoint_000000/model.safetensors: "
            "ACCESS_DENIED during CreateMultipartUpload: injected by the test",
        ),
        (PYARROW_HEAD, "data.sources[0].uri: s3://data/digits/3/a.png: ACCESS_DENIED during HeadObject"),
        (BOTO_PUT, "output.uri: s3://runs/out/r1/summary.json: AccessDenied during PutObject: injected by the test"),
        # As a Ray task's error carries it: deep in the remote traceback.
        (
            'ray::Write() (pid=1, ip=127.0.0.1)\n  File "x.py", line 3\nOSError: ' + PYARROW_UPLOAD + "\n",
            "output.uri: s3://runs/out/r1/checkpoints/checkpoint_000000/model.safetensors: "
            "ACCESS_DENIED during CreateMultipartUpload: injected by the test",
        ),
        # An image's GET in a Ray Data read task (one request, no HEAD first).
        (
            "ray::ReadImageFiles() (pid=1, ip=127.0.0.1)\nOSError: " + BOTO_GET + "\n",
            "data.sources[0].uri: s3://data/digits/3/a.png: AccessDenied during GetObject: injected by the test",
        ),
        ("ValueError: something else entirely", None),
    ],
)
def test_a_storage_error_is_one_line_naming_field_object_and_reason(text, line):
    assert storage_failure(text, URIS) == line


def test_the_longest_matching_uri_owns_the_object():
    assert field_of("s3://data/digits-more/7/x.png", URIS) == "data.sources[1].uri"
    assert field_of("s3://data/digits/7/x.png", URIS) == "data.sources[0].uri"
    assert field_of("s3://data/digitsX/7/x.png", URIS) == "storage"  # a prefix of the name is not a folder


def test_the_text_of_wrapped_errors_is_searched():
    try:
        try:
            raise OSError(PYARROW_HEAD)
        except OSError as inner:
            raise RuntimeError("Training failed") from inner
    except RuntimeError as outer:
        text = error_text(outer)
    assert "Training failed" in text and "ACCESS_DENIED" in text

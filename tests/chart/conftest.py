"""Fixtures for the chart tests: the pinned helm and an offline-ready copy of the chart.
A missing helm fails the tests and names build.sh; it never skips them."""

from __future__ import annotations

import pytest

from chart.helmchart import Helm, HelmMissing, prepare_chart


@pytest.fixture(scope="session")
def helm(tmp_path_factory):
    try:
        return Helm(tmp_path_factory.mktemp("helm-home"))
    except HelmMissing as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def chart(tmp_path_factory):
    return prepare_chart(tmp_path_factory.mktemp("chart"))

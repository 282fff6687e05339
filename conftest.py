"""Doctest namespace: docstring examples may use ``torch`` and ``sf`` without importing them."""

import pytest
import torch

import siftflow_nn


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["sf"] = siftflow_nn

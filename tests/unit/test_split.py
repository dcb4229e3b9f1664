import random
from collections import Counter

from vitpipeline.rules.split import stratified_split


def data(counts):
    return [(f"{label}/{i}.jpg", label) for label, n in counts.items() for i in range(n)]


def test_stratified_every_class_on_both_sides():
    items = data({"a": 100, "b": 10, "c": 2, "d": 3})
    train, valid = stratified_split(items, 0.2, seed=1)
    assert train.isdisjoint(valid) and len(train) + len(valid) == len(items)
    per_class = Counter(p.split("/")[0] for p in valid)
    assert per_class == {"a": 20, "b": 2, "c": 1, "d": 1}
    assert {p.split("/")[0] for p in train} == {"a", "b", "c", "d"}


def test_deterministic_and_order_independent_but_seeded():
    items = data({"a": 50, "b": 50})
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert stratified_split(items, 0.3, 7) == stratified_split(shuffled, 0.3, 7)
    assert stratified_split(items, 0.3, 7) != stratified_split(items, 0.3, 8)


def test_split_is_shuffled_not_a_tail_slice():
    items = data({"a": 100})
    _, valid = stratified_split(items, 0.2, seed=0)
    tail = {p for p, _ in items[-20:]}
    assert valid != tail


def test_singleton_class_stays_in_training():
    train, valid = stratified_split(data({"a": 1, "b": 5}), 0.5, 0)
    assert "a/0.jpg" in train and not any(p.startswith("a/") for p in valid)

"""Labelled text tasks: split by document, balanced, one-vs-rest; offline ones from the
stdlib; SAEBench-style datasets read from a tiny local copy the test writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from progressive_sae.evals.datasets.docstrings import stdlib_docstrings
from progressive_sae.evals.datasets.hub import HubTaskConfig, hub_tasks, load_hub_configs
from progressive_sae.evals.datasets.labelled import LabelledText, make_task, split_groups
from progressive_sae.evals.datasets.offline import (
    MAX_CHARS,
    PACKAGES,
    TaskSizes,
    kind_task,
    offline_tasks,
)
from tests.helpers import one_line_error

ROOT = Path(__file__).resolve().parents[2]


def items(n_groups: int = 20, per_group: int = 5) -> list[LabelledText]:
    return [LabelledText(f"g{g} t{t}", "ab"[g % 2], f"doc{g}")
            for g in range(n_groups) for t in range(per_group)]


def test_split_keeps_documents_whole_and_every_class_on_both_sides():
    train, test = split_groups(items(), 0.3, seed=0, where="t")
    assert not {i.group for i in train} & {i.group for i in test}
    assert {i.label for i in train} == {i.label for i in test} == {"a", "b"}
    assert len(test) == 30  # 3 of each class's 10 documents


def test_task_is_balanced_and_capped():
    task = make_task("t", items()[:-3], train_per_class=20, test_per_class=10)
    for labels, cap in ((task.train_labels, 20), (task.test_labels, 10)):
        assert (labels == 0).sum() == (labels == 1).sum() <= cap


def test_bad_label_sets_are_one_line_errors():
    one_line_error(lambda: make_task("t", []), "'t'", "empty")
    one_line_error(lambda: make_task("t", [LabelledText("x", "a", "d")] * 4), "'a'",
                   "at least 2 classes")
    one_line_error(lambda: offline_tasks(["nonsense"]), "'nonsense'")
    one_line_error(lambda: offline_tasks(["package:no_such_pkg"]), "'no_such_pkg'")


@pytest.mark.parametrize("package", PACKAGES)
def test_default_packages_exist_in_this_python(package):
    assert any(d.package == package for d in stdlib_docstrings(frozenset([package])))


def test_offline_kind_task_never_shares_a_source_file():
    task = kind_task(PACKAGES, TaskSizes(60, 30))
    file_of = {d.text[:MAX_CHARS]: d.file for d in stdlib_docstrings(frozenset(PACKAGES))}
    train = {file_of[t] for t in task.train_texts}
    test = {file_of[t] for t in task.test_texts}
    assert train and test and not train & test
    assert set(task.train_labels.tolist()) == {0, 1}


def write_local(tmp_path: Path) -> Path:
    import datasets

    rng = np.random.default_rng(0)

    def split(n: int) -> datasets.Dataset:
        labels = rng.integers(0, 4, n)
        return datasets.Dataset.from_dict({
            "body": [f"text {i} about {label}" for i, label in enumerate(labels)],
            "topic": labels.tolist(), "repo": [f"r{i // 3}" for i in range(n)]})

    path = tmp_path / "tiny"
    datasets.DatasetDict({"train": split(200), "test": split(80)}).save_to_disk(str(path))
    return path


def test_hub_loader_labels_and_splits_a_local_copy(tmp_path):
    path = write_local(tmp_path)
    config = HubTaskConfig(name="tiny", dataset=str(path), text_column="body",
                           label_column="topic", classes=["0", "1", "3"], train_per_class=10,
                           test_per_class=5)
    tasks = hub_tasks(config)
    assert [t.name for t in tasks] == ["tiny:0", "tiny:1", "tiny:3"]
    for task in tasks:
        assert len(task.train_texts) == 20 and len(task.test_texts) == 10
        assert (task.train_labels == 1).sum() == 10
        assert not any("about 2" in t for t in task.train_texts + task.test_texts)
        positive = task.name.split(":")[1]
        assert all(t.endswith(f"about {positive}") for t, y in
                   zip(task.train_texts, task.train_labels) if y == 1)
    binary = hub_tasks(HubTaskConfig(name="pair", dataset=str(path), text_column="body",
                                     label_column="topic", classes=["0", "1"],
                                     test_split=None, group_column="repo"))
    assert len(binary) == 1 and binary[0].classes == ("0", "1")
    repo = {f"text {i}": f"r{i // 3}" for i in range(200)}

    def repos(texts):
        return {repo[t.split(" about")[0]] for t in texts}

    assert not repos(binary[0].train_texts) & repos(binary[0].test_texts)
    one_line_error(lambda: hub_tasks(HubTaskConfig(name="one", dataset=str(path),
                                                   text_column="body", label_column="topic",
                                                   classes=["2"])), "'one'", "'2'")
    one_line_error(lambda: hub_tasks(HubTaskConfig(name="c", dataset=str(path),
                                                   text_column="text", label_column="topic")),
                   "'text'")


def test_shipped_saebench_configs_parse():
    configs = load_hub_configs(ROOT / "configs" / "evals-saebench.yaml")
    assert len(configs) == 8
    assert all(c.classes and len(c.classes) >= 2 for c in configs)

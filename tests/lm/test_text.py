"""Text sources: documents from files and datasets, windows of token ids, held-out split."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from progressive_sae.lm.text import TextConfig, is_heldout, iter_documents, iter_windows
from tests.helpers import one_line_error
from tests.lm.toy_text import BOS, EOS, doc, ids, toy_tokenizer

DOCS = ["w1 w2 w3", "w4 w5", "w6", "w7 w8 w9 w10 w11"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def write_txt(path, docs):
    path.write_text("\n\n".join(docs) + "\n")
    return path


def windows(config, tokenizer=None):
    return [w.tolist() for w in iter_windows(config, tokenizer or toy_tokenizer())]


def test_pack_windows_are_exact(tmp_path):
    source = write_txt(tmp_path / "a.txt", DOCS)
    stream = [t for d in DOCS for t in ids(d) + [EOS]]  # 15 tokens
    assert windows(TextConfig(str(source), ctx=4)) == [
        [BOS] + stream[0:3], [BOS] + stream[3:6], [BOS] + stream[6:9],
        [BOS] + stream[9:12], [BOS] + stream[12:15],
    ]
    assert windows(TextConfig(str(source), ctx=5)) == [
        [BOS] + stream[0:4], [BOS] + stream[4:8], [BOS] + stream[8:12], [BOS] + stream[12:15],
    ]
    no_bos = windows(TextConfig(str(source), ctx=4, prepend_bos=False))
    assert no_bos == [stream[0:4], stream[4:8], stream[8:12], stream[12:15]]


def test_truncate_windows_are_exact(tmp_path):
    source = write_txt(tmp_path / "a.txt", DOCS)
    assert windows(TextConfig(str(source), ctx=3, mode="truncate")) == [
        [BOS] + ids(d)[:2] for d in DOCS
    ]
    assert windows(TextConfig(str(source), ctx=3, mode="truncate", prepend_bos=False)) == [
        ids(d)[:3] for d in DOCS
    ]


def test_special_tokens_follow_the_tokenizer(tmp_path):
    source = write_txt(tmp_path / "a.txt", DOCS[:2])
    # No BOS token: windows start with text; EOS still separates documents.
    assert windows(TextConfig(str(source), ctx=4), toy_tokenizer(bos=False)) == [
        ids(DOCS[0]) + [EOS], ids(DOCS[1]) + [EOS],
    ]
    # No EOS: BOS separates the packed documents.
    assert windows(TextConfig(str(source), ctx=3), toy_tokenizer(eos=False)) == [
        [BOS] + ids(DOCS[0])[:2], [BOS, ids(DOCS[0])[2], BOS], [BOS] + ids(DOCS[1]), [BOS, BOS],
    ]


def test_txt_files_split_by_blank_lines_or_per_file(tmp_path):
    (tmp_path / "corpus" / "b").mkdir(parents=True)
    (tmp_path / "corpus" / "b" / "2.txt").write_text("w3\nw4\n\n\n  \nw5\n")
    (tmp_path / "corpus" / "a.txt").write_text("w1\n\nw2")
    (tmp_path / "corpus" / "notes.md").write_text("ignored")
    (tmp_path / "corpus" / ".hidden.txt").write_text("ignored")
    source = str(tmp_path / "corpus")
    assert list(iter_documents(TextConfig(source))) == ["w1", "w2", "w3\nw4", "w5"]
    assert list(iter_documents(TextConfig(source, txt_split="file"))) == [
        "w1\n\nw2", "w3\nw4\n\n\n  \nw5\n",
    ]


def test_every_source_kind_gives_the_same_documents(tmp_path):
    import datasets

    docs = [doc(i, 2 + i % 5) for i in range(30)] + [""]
    expected = [d for d in docs if d]
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(docs)) + "\n"
    )
    pq.write_table(pa.table({"id": list(range(len(docs))), "body": docs}),
                   tmp_path / "d.parquet", row_group_size=7)
    datasets.Dataset.from_dict({"body": docs}).save_to_disk(str(tmp_path / "saved"))
    write_txt(tmp_path / "d.txt", docs)
    configs = [
        TextConfig(str(tmp_path / "d.jsonl"), text_column="body"),
        TextConfig(str(tmp_path / "d.parquet"), text_column="body"),
        TextConfig(str(tmp_path / "saved"), text_column="body"),
        TextConfig("json", data_files=str(tmp_path / "d.jsonl"), text_column="body"),
        TextConfig("json", data_files=[str(tmp_path / "d.jsonl")], text_column="body",
                   streaming=False),
        TextConfig(str(tmp_path / "d.txt")),
    ]
    for config in configs:
        assert list(iter_documents(config)) == expected, config
    first = windows(configs[0])
    assert first == windows(configs[0]) == windows(configs[3])  # deterministic order


def test_heldout_split_is_disjoint_stable_and_by_document(tmp_path):
    docs = [doc(i, 3) + f" w{i % 7}" * (i % 5) for i in range(400)]
    docs = list(dict.fromkeys(docs))
    write_txt(tmp_path / "a.txt", docs)
    write_txt(tmp_path / "reversed.txt", docs[::-1])

    def part(name, source="a.txt", seed=0):
        return list(iter_documents(TextConfig(str(tmp_path / source), heldout_fraction=0.25,
                                              part=name, seed=seed)))

    train, heldout = part("train"), part("heldout")
    assert not set(train) & set(heldout)
    assert sorted(train + heldout) == sorted(docs) == sorted(part("all"))
    assert 0.15 < len(heldout) / len(docs) < 0.35
    assert train == [d for d in docs if d in set(train)]  # source order kept
    assert set(part("heldout", "reversed.txt")) == set(heldout)  # by content, not position
    assert part("heldout") == heldout
    assert set(part("heldout", seed=1)) != set(heldout)
    assert all(is_heldout(d, 0.25) for d in heldout)
    # Windows of the held-out part hold only held-out documents' tokens.
    held_tokens = {t for d in heldout for t in ids(d)}
    train_only = {t for d in train for t in ids(d)} - held_tokens
    config = TextConfig(str(tmp_path / "a.txt"), heldout_fraction=0.25, part="heldout", ctx=8)
    assert not {t for w in windows(config) for t in w} & train_only


def test_bad_inputs_give_one_line_errors(tmp_path):
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "missing.txt")))),
                   "missing.txt", "does not exist")
    (tmp_path / "data.csv").write_text("text\nw1\n")
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "data.csv")))),
                   "unsupported file type", ".csv")
    (tmp_path / "empty.txt").write_text("\n\n   \n")
    one_line_error(lambda: windows(TextConfig(str(tmp_path / "empty.txt"))), "no documents")
    (tmp_path / "empty_dir").mkdir()
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "empty_dir")))),
                   "holds no")
    (tmp_path / "a.jsonl").write_text(json.dumps({"content": "w1", "id": 1}) + "\n")
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "a.jsonl")))),
                   "no field 'text'", "['content', 'id']")
    (tmp_path / "bad.jsonl").write_text("{\"text\": \"w1\"}\nnot json\n")
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "bad.jsonl")))),
                   "line 2", "not JSON")
    pq.write_table(pa.table({"content": ["w1"]}), tmp_path / "a.parquet")
    one_line_error(lambda: list(iter_documents(TextConfig(str(tmp_path / "a.parquet")))),
                   "no column 'text'", "['content']")
    one_line_error(lambda: list(iter_documents(
        TextConfig("json", data_files=str(tmp_path / "a.jsonl")))), "no column 'text'", "content")
    one_line_error(lambda: list(iter_documents(TextConfig("surely-not/a-dataset"))),
                   "could not load dataset 'surely-not/a-dataset'")
    write_txt(tmp_path / "a.txt", DOCS)
    one_line_error(lambda: windows(TextConfig(str(tmp_path / "a.txt"), part="heldout")),
                   "no documents", "held-out fraction 0")
    one_line_error(lambda: windows(TextConfig(str(tmp_path / "a.txt"), ctx=1)), "ctx=1")

    class Silent:  # a tokenizer that turns every text into no tokens
        bos_token_id = eos_token_id = None

        def __call__(self, texts, **kwargs):
            return {"input_ids": [[] for _ in texts]}

    one_line_error(lambda: windows(TextConfig(str(tmp_path / "a.txt")), Silent()), "no tokens")
    for bad in ({"ctx": 0}, {"mode": "chunk"}, {"heldout_fraction": 1.0}, {"part": "test"},
                {"txt_split": "lines"}, {"source": ""}):
        one_line_error(lambda bad=bad: TextConfig(**{"source": "x.txt", **bad}))
    one_line_error(lambda: TextConfig.from_dict({"source": "x.txt", "column": "body"}),
                   "unknown key 'column'")

"""Data loading and preparation: --dataset_args parsing, local/Hub loading, pt blocks, SFT formatting."""

import json

import datasets
import pytest
from datasets import Dataset, DatasetDict, IterableDataset
from transformers import AutoTokenizer

from editflow_hf.data.prepare import (
    DatasetSpec,
    format_sft,
    group_texts,
    load_splits,
    parse_dataset_args,
    prepare_datasets,
    tokenize_conversation,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_editflow_dir):
    return AutoTokenizer.from_pretrained(tiny_editflow_dir)


@pytest.fixture
def alpaca_file(tmp_path):
    rows = [{"instruction": f"Say the number {i}.", "input": "" if i % 2 else f"in words {i}", "output": f"Number {i}!"} for i in range(30)]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# --- --dataset_args ---------------------------------------------------------------------------------------------


def test_parse_dataset_args_suffix_and_multiple():
    assert parse_dataset_args("tatsu-lab/alpaca") == [DatasetSpec("tatsu-lab/alpaca", {})]
    assert parse_dataset_args("Trelis/tiny-shakespeare[train:1000,test:100]") == [
        DatasetSpec("Trelis/tiny-shakespeare", {"train": 1000, "test": 100})
    ]
    assert parse_dataset_args("a/b[train] | data/c.jsonl[train:5]") == [
        DatasetSpec("a/b", {"train": None}),
        DatasetSpec("data/c.jsonl", {"train": 5}),
    ]


@pytest.mark.parametrize("bad", ["", "a/b[train:x]", "a/b[train:1", "a|", "a/b[:10]"])
def test_parse_dataset_args_rejects_bad_specs(bad):
    with pytest.raises(ValueError, match="--dataset_args"):
        parse_dataset_args(bad)


def test_local_jsonl_limits_and_deterministic_disjoint_eval(alpaca_file):
    spec = parse_dataset_args(f"{alpaca_file}[train:20,test:5]")[0]
    first = load_splits(spec, seed=3)
    again = load_splits(spec, seed=3)
    assert len(first["train"]) == 20 and len(first["test"]) == 5
    assert list(first["test"]["instruction"]) == list(again["test"]["instruction"])
    assert not set(first["train"]["instruction"]) & set(first["test"]["instruction"])


def test_default_eval_carving_fraction_and_none(alpaca_file):
    carved = load_splits(DatasetSpec(str(alpaca_file)), eval_split_size=0.1)
    assert (len(carved["train"]), len(carved["test"])) == (27, 3)
    assert set(load_splits(DatasetSpec(str(alpaca_file)), eval_split_size=0)) == {"train"}
    # Explicit splits: only those asked for.
    assert set(load_splits(DatasetSpec(str(alpaca_file), {"train": 10}))) == {"train"}


def test_local_txt_is_read_by_paragraph(tmp_path):
    path = tmp_path / "plays.txt"
    path.write_text("First Citizen:\nSpeak.\n\nAll:\nSpeak, speak.\n\nMenenius:\nWhy?\n")
    train = load_splits(DatasetSpec(str(path)), eval_split_size=0)["train"]
    assert train.column_names == ["text"]
    assert [text.strip() for text in train["text"]] == ["First Citizen:\nSpeak.", "All:\nSpeak, speak.", "Menenius:\nWhy?"]


def test_missing_local_file_and_unknown_split(tmp_path, alpaca_file):
    with pytest.raises(ValueError, match="no such file"):
        load_splits(DatasetSpec(str(tmp_path / "nope.jsonl")))
    with pytest.raises(ValueError, match="no split 'holdout'.*available: train"):
        load_splits(DatasetSpec(str(alpaca_file), {"train": 5, "holdout": 2}))
    with pytest.raises(ValueError, match="unsupported file type"):
        (tmp_path / "x.xml").write_text("<a/>")
        load_splits(DatasetSpec(str(tmp_path / "x.xml")))


def test_hub_id_builds_the_load_dataset_call(monkeypatch):
    calls = []
    hub = DatasetDict(
        train=Dataset.from_dict({"Text": [f"train {i}" for i in range(50)]}),
        test=Dataset.from_dict({"Text": [f"test {i}" for i in range(10)]}),
    )

    def fake_load_dataset(path, *args, **kwargs):
        calls.append((path, args, kwargs))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_splits(parse_dataset_args("Trelis/tiny-shakespeare[train:7,test:3]")[0])
    assert calls == [("Trelis/tiny-shakespeare", (None,), {"streaming": False})]
    assert list(splits["train"]["Text"]) == [f"train {i}" for i in range(7)]
    assert list(splits["test"]["Text"]) == ["test 0", "test 1", "test 2"]
    # No suffix: the Hub test split is the evaluation split, untouched.
    assert len(load_splits(DatasetSpec("Trelis/tiny-shakespeare"))["test"]) == 10
    load_splits(parse_dataset_args("HuggingFaceTB/smoltalk:all[train:2]")[0])
    assert calls[-1] == ("HuggingFaceTB/smoltalk", ("all",), {"streaming": False})


@pytest.fixture
def dataset_with_configs(tmp_path):
    """A dataset folder in the Hub layout of several configurations (README `configs:`), smoltalk-like."""

    def make(config_names):
        root = tmp_path / "-".join(config_names)
        for name in config_names:
            (root / name).mkdir(parents=True)
            (root / name / "rows.jsonl").write_text("".join(json.dumps({"text": f"{name} {i}"}) + "\n" for i in range(4)))
        header = "".join(f"- config_name: {name}\n  data_files: {name}/*.jsonl\n" for name in config_names)
        (root / "README.md").write_text(f"---\nconfigs:\n{header}---\n")
        return str(root)

    return make


def test_dataset_config_is_named_after_a_colon(dataset_with_configs):
    root = dataset_with_configs(["all", "short"])
    spec = parse_dataset_args(f"{root}:short[train:3]|other/ds")[0]
    assert spec == DatasetSpec(root, {"train": 3}, "short")
    assert list(load_splits(spec)["train"]["text"]) == ["short 0", "short 1", "short 2"]
    assert parse_dataset_args("org/name:v1.0")[0] == DatasetSpec("org/name", {}, "v1.0")


def test_dataset_of_several_configs_falls_back_to_all_or_says_which(dataset_with_configs, caplog):
    with caplog.at_level("WARNING", logger="editflow_hf.data.prepare"):
        splits = load_splits(DatasetSpec(dataset_with_configs(["all", "short"]), {"train": None}))
    assert list(splits["train"]["text"]) == [f"all {i}" for i in range(4)]
    assert "using 'all'" in caplog.text
    no_all = dataset_with_configs(["first", "second"])
    with pytest.raises(ValueError, match=rf"{no_all} needs a configuration; pick one of first, second, e\.g\. {no_all}:first"):
        load_splits(DatasetSpec(no_all))
    with pytest.raises(ValueError, match="has no configuration 'third'; pick one of first, second"):
        load_splits(DatasetSpec(no_all, config="third"))


@pytest.mark.parametrize("streaming", [False, True])
def test_folder_saved_with_save_to_disk(tmp_path, streaming):
    whole = tmp_path / "dict"
    DatasetDict(train=Dataset.from_dict({"text": ["a", "b", "c"]}), test=Dataset.from_dict({"text": ["z"]})).save_to_disk(whole)
    single = tmp_path / "single"
    Dataset.from_dict({"text": ["only"]}).save_to_disk(single)
    splits = load_splits(DatasetSpec(str(whole)), streaming=streaming)
    assert [row["text"] for row in splits["train"]] == ["a", "b", "c"]
    assert [row["text"] for row in splits["test"]] == ["z"]
    assert isinstance(splits["train"], IterableDataset) == streaming
    assert [row["text"] for row in load_splits(DatasetSpec(str(single), {"train": None}), streaming=streaming)["train"]] == ["only"]
    for folder in (whole, single):
        with pytest.raises(ValueError, match="is a single dataset; drop ':all'"):
            load_splits(DatasetSpec(str(folder), config="all"))


def test_a_file_with_a_colon_in_its_name_is_not_split(tmp_path, alpaca_file):
    odd = tmp_path / "alpaca:v2.jsonl"
    odd.write_text(alpaca_file.read_text())
    assert parse_dataset_args(str(odd)) == [DatasetSpec(str(odd))]
    with pytest.raises(ValueError, match="is a single dataset; drop ':all'"):
        load_splits(DatasetSpec(str(alpaca_file), config="all"))


# --- pt: blocks -------------------------------------------------------------------------------------------------


def _reference_blocks(docs: list[str], tokenizer, max_length: int, insert_eos: bool) -> list[list[int]]:
    stream = []
    for doc in docs:
        stream += tokenizer.encode(doc, add_special_tokens=False) + ([tokenizer.eos_token_id] if insert_eos else [])
    size = max_length - 1
    return [[tokenizer.bos_token_id] + stream[i : i + size] for i in range(0, len(stream), size)]


@pytest.mark.parametrize("insert_eos", [False, True])
def test_group_texts_matches_reference(tokenizer, insert_eos):
    docs = [f"Doc {i}: " + " ".join(["to be or not to be"] * (i % 5 + 1)) for i in range(40)]
    grouped = group_texts(Dataset.from_dict({"body": docs}), tokenizer, text_field="body", max_length=16, insert_eos=insert_eos)
    blocks = list(grouped["input_ids"])
    assert grouped.column_names == ["input_ids"]
    assert blocks == _reference_blocks(docs, tokenizer, 16, insert_eos)
    assert all(len(b) == 16 for b in blocks[:-1]) and 1 < len(blocks[-1]) <= 16
    eos_count = sum(b.count(tokenizer.eos_token_id) for b in blocks)
    assert eos_count == (len(docs) if insert_eos else 0)


def test_group_texts_missing_field_lists_columns(tokenizer):
    with pytest.raises(ValueError, match=r"no column 'text'; available columns: Text, id\. Pass the right one with --text_field"):
        group_texts(Dataset.from_dict({"Text": ["a"], "id": [1]}), tokenizer, text_field="text", max_length=8)


def test_group_texts_streaming_equals_in_memory(tokenizer):
    docs = [f"line {i} " * (i + 1) for i in range(30)]
    in_memory = list(group_texts(Dataset.from_dict({"text": docs}), tokenizer, max_length=12)["input_ids"])
    streamed = group_texts(IterableDataset.from_generator(lambda: ({"text": d} for d in docs)), tokenizer, max_length=12)
    assert [row["input_ids"] for row in streamed] == in_memory


def test_prepare_pt_streaming_matches_in_memory(tokenizer, shared_data):
    source = f"{shared_data / 'tiny-shakespeare.txt'}[train:40]"
    streamed = prepare_datasets("pt", source, tokenizer, max_length=24, streaming=True)
    in_memory = prepare_datasets("pt", source, tokenizer, max_length=24)
    assert set(streamed) == {"train"} and isinstance(streamed["train"], IterableDataset)
    assert [row["input_ids"] for row in streamed["train"]] == list(in_memory["train"]["input_ids"])


def test_hub_id_offline_is_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'a/b' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match="cannot load a/b from the Hub .*HF_HUB_OFFLINE"):
        load_splits(DatasetSpec("a/b"))


def test_prepare_pt_on_shakespeare(tokenizer, shared_data):
    splits = prepare_datasets(
        "pt", f"{shared_data / 'tiny-shakespeare.txt'}[train:300,test:30]", tokenizer, max_length=32, insert_eos=True
    )
    assert set(splits) == {"train", "test"}
    first = splits["train"][0]["input_ids"]
    assert len(first) == 32 and first[0] == tokenizer.bos_token_id
    assert tokenizer.eos_token_id in sum(splits["train"]["input_ids"][:5], [])


# --- sft --------------------------------------------------------------------------------------------------------


def test_sft_alpaca_prompt_len_and_targets(tokenizer, alpaca_file):
    rows = load_splits(DatasetSpec(str(alpaca_file)), eval_split_size=0)["train"]
    formatted = format_sft(rows, tokenizer, max_length=64)
    assert formatted.column_names == ["input_ids", "prompt_len"] and len(formatted) == 30
    for row, feature in zip(rows, formatted):
        x1, prompt_len = feature["input_ids"], feature["prompt_len"]
        user = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
        assert x1[0] == tokenizer.bos_token_id
        assert x1[1:prompt_len] == tokenizer.encode(prompt, add_special_tokens=False)
        assert tokenizer.decode(x1[1:prompt_len]) == tokenizer.decode(tokenizer.encode(prompt, add_special_tokens=False))
        answer = tokenizer.decode(x1[prompt_len:], skip_special_tokens=True)
        assert answer.strip() == tokenizer.decode(tokenizer.encode(row["output"], add_special_tokens=False))
        assert x1[-1] == tokenizer.eos_token_id  # the template ends the answer with EOS


def test_sft_messages_multi_turn_and_drops(tokenizer, caplog):
    conversations = [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
         {"role": "user", "content": "how are you?"}, {"role": "assistant", "content": "fine thanks"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "name a color"}, {"role": "assistant", "content": "red"}],
        [{"role": "user", "content": "no answer yet"}],
        [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "too long a prompt"}],
    ]
    with caplog.at_level("WARNING"):
        formatted = format_sft(Dataset.from_dict({"messages": conversations}), tokenizer, max_length=48)
    assert len(formatted) == 2
    assert "dropped 1 of 4 conversations that do not end with an assistant turn" in caplog.text
    assert "dropped 1 of 3 rows whose prompt alone fills --max_length 48" in caplog.text
    first = formatted[0]
    prompt_text = tokenizer.decode(first["input_ids"][1 : first["prompt_len"]])
    assert "hello" in prompt_text and "how are you" in prompt_text and "fine" not in prompt_text
    assert tokenizer.decode(first["input_ids"][first["prompt_len"] :], skip_special_tokens=True).strip() == "fine thanks"


def test_sft_truncates_to_max_length(tokenizer):
    rows = Dataset.from_dict({"instruction": ["write"], "output": ["long answer " * 50]})
    feature = format_sft(rows, tokenizer, max_length=20)[0]
    assert len(feature["input_ids"]) == 20 and feature["prompt_len"] < 20


def test_sft_unknown_row_format_lists_columns(tokenizer):
    with pytest.raises(ValueError, match="available columns: prompt, completion"):
        format_sft(Dataset.from_dict({"prompt": ["a"], "completion": ["b"]}), tokenizer)


def test_template_whose_prompt_is_not_a_prefix_is_rejected(tokenizer):
    odd = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    odd.chat_template = "{% for m in messages %}{{ m['content'] }}|{% endfor %}{% if add_generation_prompt %}>>{% endif %}"
    with pytest.raises(ValueError, match="prompt cannot be kept fixed"):
        tokenize_conversation([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], odd)


def test_prepare_sft_on_qa_tiny(tokenizer, shared_data):
    splits = prepare_datasets("sft", f"{shared_data / 'qa-tiny.jsonl'}[train:40,test:8]", tokenizer, max_length=256)
    assert len(splits["train"]) == 40 and len(splits["test"]) == 8
    assert all(1 < p < 256 for p in splits["train"]["prompt_len"])

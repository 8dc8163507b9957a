"""lm-eval: an Edit Flow checkpoint as lm-eval's `editflow` model. A tiny model that memorised four answers picks
them among all four on a local multiple-choice task through lm-eval's own evaluator (simple_evaluate and the
command line), writes them on a local generation task, and its loglikelihoods are the Edit Flow bound."""

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is part of the dev extra: pip install -e '.[dev]'")

import editflow_hf.lm_eval  # noqa: E402  (registers "editflow")
from builders import train_in_process  # noqa: E402
from conftest import REPO_ROOT  # noqa: E402
from editflow_hf.lm_eval import EditFlowLM  # noqa: E402
from editflow_hf.objective.loss import EditFlowLoss  # noqa: E402
from editflow_hf.path.collator import DRAW_KEY, EditFlowCollator  # noqa: E402

PAIRS = [("sky color?", "blue"), ("capital of france?", "paris"), ("two plus two?", "four"), ("opposite of hot?", "cold")]
ANSWERS = [a for _, a in PAIRS]


def prompt(question: str) -> str:
    return f"question: {question} answer:"


@pytest.fixture(scope="module")
def memorised(tiny_editflow_dir, tmp_path_factory):
    """The tiny model trained on the four prompts -> answers (+ EOS), from 4 masks (400 steps of 8: about 30 s on
    one busy core; its greedy answers are right, and with common draws per question its bound ranks the right
    answer first by 1 to 10 nats)."""
    out = tmp_path_factory.mktemp("lm-eval-model") / "model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend for the cores
    try:
        return train_in_process(tiny_editflow_dir, ANSWERS * 8, out, steps=400, prompts=[prompt(q) for q, _ in PAIRS] * 8,
                                append_eos=True, batch_size=8, x0_sampler="masks[length:4]")  # fmt: skip
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """Two local lm-eval tasks (YAML + JSON rows, read through include_path): multiple choice and generation."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rows = folder / "qa.jsonl"
    rows.write_text("".join(json.dumps({"question": prompt(q), "choices": ANSWERS, "label": i, "answer": a}) + "\n"
                            for i, (q, a) in enumerate(PAIRS)))  # fmt: skip
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {rows}\ntest_split: test\ndoc_to_text: \"{{{{question}}}}\"\n"
    (folder / "mc.yaml").write_text(
        "task: editflow_tiny_mc\n" + common + "output_type: multiple_choice\ndoc_to_choice: \"{{choices}}\"\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n"
    )
    (folder / "gen.yaml").write_text(
        "task: editflow_tiny_gen\n" + common + "output_type: generate_until\ndoc_to_target: \"{{answer}}\"\n"
        "generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: 4\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n    ignore_case: true\n"
    )
    return folder


def test_multiple_choice_argmax_picks_the_memorised_answers_through_simple_evaluate(memorised, tasks):
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model="editflow", model_args=f"pretrained={memorised},append_eos=True,num_t=8", tasks=["editflow_tiny_mc"],
        task_manager=TaskManager(include_path=str(tasks)), batch_size=16, log_samples=True,
    )  # fmt: skip
    assert results["results"]["editflow_tiny_mc"]["acc,none"] == 1.0
    for sample in results["samples"]["editflow_tiny_mc"]:
        scores = [float(resp[0][0]) for resp in sample["resps"]]
        assert len(scores) == 4 and int(np.argmax(scores)) == sample["target"]
        assert all(score < 0 for score in scores)  # -bound: a lower bound on a log-probability


def plain_bound(model, feature, collator, key, num_t):
    """B(x1) of one feature, by the formula: the mean over the midpoint grid of the unclamped, unnormalised loss of
    one x_t drawn from the Generator seeded with (key, grid index)."""
    loss = EditFlowLoss(scheduler=collator.scheduler, max_w=None, normalize="none")
    total = 0.0
    for k in range(num_t):
        batch = collator([{**feature, DRAW_KEY: (*key, k)}], t=np.full(1, (k + 0.5) / num_t, dtype=np.float32))
        with torch.no_grad():
            total += float(loss(model(**batch.model_inputs()), batch).row_loss[0])
    return total / num_t


def test_loglikelihood_is_the_bound_of_context_plus_continuation(memorised):
    """The numbers lm-eval gets are -B(x1 | x0) of BOS + context + continuation + EOS with the context as a fixed
    prompt, under the model's coupling, each row drawn from (seed, its context): a plain per-row reference."""
    from lm_eval.api.instance import Instance

    lm = EditFlowLM(pretrained=str(memorised), append_eos=True, num_t=4, seed=3, batch_size=32)
    requests = [Instance("loglikelihood", {}, (prompt(q), " " + a), i) for i, (q, a) in enumerate(PAIRS)]
    requests += [Instance("loglikelihood", {}, (prompt(PAIRS[0][0]), " " + a), 4 + i) for i, a in enumerate(ANSWERS[1:])]
    got = [score for score, _ in lm.loglikelihood(requests)]
    tok, model = lm.tokenizer, lm.model
    assert lm.x0_sampler.spec == "masks[length:4]"  # the coupling the model was trained with
    collator = EditFlowCollator.from_tokenizer(tok, x0_sampler="masks[length:4]", scheduler=model.config.scheduler,
                                               tie_break=model.config.tie_break or "auto")  # fmt: skip
    for request, score in zip(requests, got):
        context, continuation = request.args
        context_ids = tok.encode(context, add_special_tokens=False)
        answer = tok.encode(continuation, add_special_tokens=False)
        feature = {"input_ids": [tok.bos_token_id, *context_ids, *answer, tok.eos_token_id], "prompt_len": 1 + len(context_ids)}
        key = (3, zlib.crc32(np.asarray([tok.bos_token_id, *context_ids], dtype=np.int64).tobytes()))
        assert score == pytest.approx(-plain_bound(model, feature, collator, key, 4), rel=1e-5)
    reordered = [score for score, _ in lm.loglikelihood(requests[::-1])]
    assert reordered == pytest.approx(got[::-1], rel=1e-5)  # any order, any batch: the same numbers (up to float sums)
    # is_greedy is real when asked for: greedy decoding from the context writes the memorised answer.
    greedy = EditFlowLM(pretrained=str(memorised), append_eos=True, num_t=1, check_greedy=True).loglikelihood(requests[:5])
    assert [g for _, g in greedy] == [True, True, True, True, False]
    # A whole text: its rolling loglikelihood is -B from BOS alone.
    [rolling] = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("the sky is blue",), 0)])
    x1 = [tok.bos_token_id, *tok.encode("the sky is blue", add_special_tokens=False)]
    key = (3, zlib.crc32(np.asarray(x1, dtype=np.int64).tobytes()))
    assert rolling == pytest.approx(-plain_bound(model, {"input_ids": x1, "prompt_len": 1}, collator, key, 4), rel=1e-5)


def test_generate_until_writes_the_answers_and_the_cli_runs_both_tasks(memorised, tasks, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "editflow_hf.lm_eval", "run", "--model", "editflow",
         "--model_args", f"pretrained={memorised},append_eos=True,num_t=8,tau=0.05", "--include_path", str(tasks),
         "--tasks", "editflow_tiny_mc,editflow_tiny_gen", "--batch_size", "8", "--output_path", str(out),
         "--log_samples"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    [result_file] = [p for p in out.rglob("results_*.json")]
    results = json.loads(result_file.read_text())["results"]
    assert results["editflow_tiny_mc"]["acc,none"] == 1.0
    assert results["editflow_tiny_gen"]["exact_match,none"] == 1.0
    [samples_file] = [p for p in out.rglob("samples_editflow_tiny_gen_*.jsonl")]
    generated = [json.loads(line)["filtered_resps"][0] for line in samples_file.read_text().splitlines()]
    assert sorted(g.strip() for g in generated) == sorted(ANSWERS)

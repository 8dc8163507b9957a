"""editflow-eval: the held-out bound (deterministic, batching-invariant, lower after training), the sample
metrics against plain references, generative perplexity with a local causal LM, the model-index on the card,
and learning to edit (a `corrupt[p:0.2]` model revises corrupted lines; a masks-only model says it cannot)."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from rapidfuzz.distance import Levenshtein
from transformers import AutoTokenizer, pipeline

import editflow_hf
from builders import train_in_process
from conftest import REPO_ROOT
from editflow_hf import EditFlowForEditing
from editflow_hf import evaluation
from editflow_hf.evaluation import generation_metrics, generative_perplexity, normalize_answer, token_f1
from editflow_hf.hub.upload import plan_upload, push_checkpoint
from editflow_hf.errors import EditFlowError
from editflow_hf.modeling import pipeline_editflow
from editflow_hf.objective.bound import edit_flow_bound
from editflow_hf.objective.loss import EditFlowLoss
from editflow_hf.path.collator import EditFlowCollator
from editflow_hf.path.couplings import Corrupt

editflow_hf.register()  # the Edit Flow classes with AutoConfig, AutoModel and pipeline()

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
HELDOUT = "\n\n".join(
    f"The {a} of the {b} was {c}, and all the {d} came to see it." for a, b, c, d in
    zip(["king", "queen", "duke", "lord"] * 4, ["north", "south", "east", "west"] * 4,
        ["good", "bad", "old", "new"] * 4, ["men", "women", "children", "lords"] * 4)
)  # fmt: skip


def run_eval(*args):
    proc = subprocess.run([sys.executable, "-m", "editflow_hf.apps.eval", *map(str, args)], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout.strip().splitlines()[-1]


def test_eval_cli_bound_is_deterministic_and_lower_after_training(tiny_editflow_dir, tmp_path):
    heldout = tmp_path / "heldout.txt"
    heldout.write_text(HELDOUT + "\n")
    tokenizer = AutoTokenizer.from_pretrained(tiny_editflow_dir)
    blocks = [line for line in HELDOUT.split("\n\n")]
    trained = train_in_process(tiny_editflow_dir, blocks * 4, tmp_path / "trained", steps=40)
    flags = ["--dataset_args", heldout, "--text_field", "text", "--max_length", "64", "--seed", "0"]
    first = run_eval("--model_name_or_path", trained, *flags)
    assert run_eval("--model_name_or_path", trained, *flags) == first  # same seed: the same JSON, exactly
    result = json.loads(first)
    untrained = json.loads(run_eval("--model_name_or_path", tiny_editflow_dir, *flags, "--num_samples", "2", "--corrupt_p", "0"))
    assert result["x0_sampler"] == untrained["x0_sampler"] == "masks[length:64]"  # the same coupling on both
    bound, before = result["bound"], untrained["bound"]
    assert bound["num_sequences"] == before["num_sequences"] >= 2 and bound["stderr"] > 0
    assert bound["per_token"] + 2 * bound["stderr"] < before["per_token"]
    generation = result["generation"]
    assert {"length", "distinct_1", "distinct_2", "repeated_2gram_rate", "leftover_masks"} <= set(generation)
    assert generation["num_samples"] == 16 and 0 <= generation["leftover_masks"] <= 1
    assert set(result["restoration"]) >= {"edit_distance_before", "edit_distance_after", "trained_to_edit"}
    assert result["restoration"]["trained_to_edit"] is False and result["restoration"]["edit_distance_before"] > 0
    assert len(tokenizer.encode(blocks[0])) < 64


def test_eval_sft_reports_exact_match_and_f1(tiny_editflow_dir, monkeypatch):
    result = evaluation.evaluate(str(tiny_editflow_dir), str(REPO_ROOT / "tests/fixtures/qa.jsonl[train:4]"), task="sft",
                               max_length=64, num_t=2, num_samples=4, mask_length=8, tau=0.1, temperature=0,
                               corrupt_p=0)  # fmt: skip
    assert result["bound"]["num_sequences"] == 4 and "restoration" not in result
    assert 0 <= result["generation"]["exact_match"] <= 1 and 0 <= result["generation"]["token_f1"] <= 1
    # Exact match compares normalised answers: a model that writes the reference gets 1.
    references = ["paris is the capital of france.", "rome is the capital of italy.",
                  "madrid is the capital of spain.", "tokyo is the capital of japan."]  # fmt: skip
    real_sample = evaluation._sample
    tokenizer = AutoTokenizer.from_pretrained(tiny_editflow_dir)

    def perfect(model, starts, protected, **kwargs):
        if not any(protected[0][1:]):  # restoration: not asked here
            return real_sample(model, starts, protected, **kwargs)
        return [s[: sum(p)] + tokenizer.encode(r.upper(), add_special_tokens=False) for s, p, r in zip(starts, protected, references)]

    monkeypatch.setattr(evaluation, "_sample", perfect)
    result = evaluation.evaluate(str(tiny_editflow_dir), str(REPO_ROOT / "tests/fixtures/qa.jsonl[train:4]"), task="sft",
                               max_length=64, num_t=1, num_samples=4, corrupt_p=0)  # fmt: skip
    assert result["generation"]["exact_match"] == 1.0 and result["generation"]["token_f1"] == 1.0


def test_bound_is_batching_invariant_and_matches_a_plain_reference(tiny_editflow_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_editflow_dir)
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir)
    texts = HELDOUT.split("\n\n")[:5]
    features = [{"input_ids": [tokenizer.bos_token_id] + tokenizer.encode(t, add_special_tokens=False), "prompt_len": 1 + i % 2}
                for i, t in enumerate(texts)]  # fmt: skip

    def collator(seed=0):
        return EditFlowCollator.from_tokenizer(tokenizer, x0_sampler="masks[length:8]", tie_break="random", seed=seed)

    batched = edit_flow_bound(model, features, collator(), num_t=3, batch_size=4)
    single = edit_flow_bound(model, features, collator(), num_t=3, batch_size=1)
    assert batched.bound == pytest.approx(single.bound, rel=1e-5) and batched.stderr == pytest.approx(single.stderr, rel=1e-4)
    assert edit_flow_bound(model, features, collator(seed=1), num_t=3).bound != batched.bound

    # Plain reference: one example at a time, t on the midpoint grid, the unclamped, unnormalised loss.
    reference_collator, loss = collator(), EditFlowLoss(max_w=None, normalize="none")
    totals = np.zeros(len(features))
    for t in (1 / 6, 3 / 6, 5 / 6):
        for i, feature in enumerate(features):
            batch = reference_collator([feature], t=[t])
            with torch.no_grad():
                totals[i] += float(loss(model(**batch.model_inputs()), batch).loss) / 3
    tokens = np.array([len(f["input_ids"]) - f["prompt_len"] for f in features])
    ratio = totals.sum() / tokens.sum()
    stderr = math.sqrt(((totals - ratio * tokens) ** 2).sum() / (5 * 4)) / tokens.mean()
    assert batched.bound == pytest.approx(ratio, rel=1e-5) and batched.stderr == pytest.approx(stderr, rel=1e-4)
    assert batched.num_tokens == tokens.sum()


def test_answer_normalisation_and_f1_follow_squad():
    assert normalize_answer("The  Capital, of FRANCE!") == "capital of france"
    assert normalize_answer("An apple a day") == "apple day"
    assert token_f1("paris is the capital", "Paris is the capital.") == 1.0
    assert token_f1("paris paris", "paris is big") == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("berlin", "paris") == 0.0


def test_generation_metrics_against_hand_counts():
    metrics = generation_metrics([[1, 2, 1, 2, 1], [3, 9, 9]], mask_token_id=9)
    assert metrics["length"] == 4.0
    assert metrics["distinct_1"] == pytest.approx(4 / 8)  # {1, 2, 3, 9} of 8 tokens
    assert metrics["distinct_2"] == pytest.approx(4 / 6)  # (1,2) (2,1) (3,9) (9,9) of 6 bigrams
    assert metrics["repeated_2gram_rate"] == pytest.approx((2 / 4 + 0 / 2) / 2)  # (1,2) and (2,1) come back once each
    assert metrics["leftover_masks"] == pytest.approx(2 / 8)


def tiny_llama_judge(folder, minilm_path):
    """A tiny random Llama over MiniLM's WordPiece vocabulary (its [CLS] as BOS) saved to `folder`: (model, tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.bos_token = tokenizer.cls_token
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))  # fmt: skip
    llama.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return llama, tokenizer


def test_generative_perplexity_with_a_tiny_local_llama(tmp_path, minilm_path):
    llama, tokenizer = tiny_llama_judge(tmp_path / "llama", minilm_path)
    texts = ["to be or not to be", "the cat sat on the mat"]
    ppl = generative_perplexity(texts, str(tmp_path / "llama"))
    nll, count = 0.0, 0
    for text in texts:  # reference: the LM's own mean loss (labels = inputs), weighted by predicted tokens
        ids = torch.tensor([[tokenizer.cls_token_id] + tokenizer.encode(text, add_special_tokens=False)])
        with torch.no_grad():
            nll += float(llama(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    assert ppl == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert ppl > len(tokenizer) / 10  # a random LM is near-uniform over the vocabulary


def test_eval_judges_the_samples_beside_real_and_shuffled_text_of_their_own_length(tiny_editflow_dir, tmp_path, minilm_path):
    """With --ref_model, editflow-eval's `judge_scale` scores real held-out windows and their shuffled words of each
    sample's own token length under the same judge (a tiny random Llama here), and says where the samples sit."""
    from editflow_hf.causal_lm import ReferenceLM, place_on_scale

    tiny_llama_judge(tmp_path / "judge", minilm_path)
    data = tmp_path / "heldout.txt"
    data.write_text("\n\n".join(["the king is dead and the queen is gone to the north", "a horse a horse my kingdom for a horse",
                                   "to be or not to be that is the question", "now is the winter of our discontent"]))  # fmt: skip
    seen = []
    original = ReferenceLM.length_matched_scale

    def spy(self, samples, references, seed=0):
        seen.append((list(samples), list(references)))
        return original(self, samples, references, seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ReferenceLM, "length_matched_scale", spy)
        result = evaluation.evaluate(str(tiny_editflow_dir), str(data), max_length=32, num_t=1, num_samples=3, num_examples=3,
                                     mask_length=6, tau=0.2, corrupt_p=0, ref_model=str(tmp_path / "judge"))  # fmt: skip
    scale, texts = result["judge_scale"], result["generation"]["examples"]
    (samples, references), = seen
    assert samples == texts  # the samples themselves, judged against the held-out text they were asked beside
    held_out_words = set(data.read_text().split())
    assert references and all(set(text.split()) <= held_out_words for text in references)
    judge = ReferenceLM.load(str(tmp_path / "judge"))
    scored = [text for text in texts if judge.token_length(text) >= 1]
    assert scale["texts"] == len(scored) and scale["tokens"] == sum(judge.token_length(text) for text in scored)
    assert scale["samples"] == pytest.approx(judge.perplexity(scored)) == result["generative_perplexity"]
    assert scale["real"] == pytest.approx(judge.perplexity(judge.real_windows(references, [judge.token_length(t) for t in scored])))
    assert scale["place"] == pytest.approx(place_on_scale(scale["samples"], scale["real"], scale["shuffled"]), nan_ok=True)
    assert f"samples {scale['samples']:.0f}" in scale["in_words"] and "shuffled" in scale["in_words"]


def test_push_puts_eval_results_in_model_index(tiny_editflow_dir, tmp_path):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_editflow_dir, checkpoint)
    result = {"dataset": "user/heldout[test:100]", "split": "test", "task": "pt",
              "bound": {"per_token": 3.25, "stderr": 0.5}, "generation": {"distinct_2": 0.75, "length": 12.0},
              "restoration": {"edit_distance_before": 4.0, "edit_distance_after": 2.5}}  # fmt: skip
    (checkpoint / "eval_results.json").write_text(json.dumps(result))
    front = plan_upload(checkpoint, "me/tiny").card.split("---")[1]
    index = yaml.safe_load(front)["model-index"][0]
    assert index["name"] == "tiny"
    entry = index["results"][0]
    assert entry["dataset"]["type"] == "user/heldout" and entry["dataset"]["split"] == "test"
    metrics = {m["type"]: m["value"] for r in index["results"] for m in r["metrics"]}
    assert metrics["edit_flow_bound"] == 3.25 and metrics["distinct_2"] == 0.75
    assert metrics["restoration_edit_distance_after"] == 2.5
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**result, "bound": {"per_token": 1.5, "stderr": 0.1}}))
    assert "1.5" in plan_upload(checkpoint, "me/tiny", eval_results=other).card  # the flag wins over the file beside it
    other.write_text("{}")
    with pytest.raises(EditFlowError, match="not an editflow-eval result"):
        push_checkpoint(checkpoint, "me/tiny", dry_run=True, eval_results=other)


def _noisy_copies(tokenizer, lines, p=0.2, seed=0):
    ids = [tokenizer.encode(line, add_special_tokens=False) for line in lines]
    pool = np.concatenate([np.array(i) for i in ids])
    rng = np.random.default_rng(seed)
    return [tokenizer.decode(Corrupt(p).corrupt(np.array(i), rng, pool)) for i in ids]


def test_corrupt_trained_model_revises_text_and_masks_only_model_warns(tiny_editflow_dir, tmp_path, monkeypatch):
    animals = ["cat", "dog", "bird", "fish", "horse", "cow", "duck", "mouse"]
    lines = [f"the {a} saw a {t} today" for a in animals for t in ("red ball", "green hat", "old boat", "big tree")]
    assert len(lines) == 32
    model_dir = train_in_process(tiny_editflow_dir, lines, tmp_path / "editor", steps=600, x0_sampler="corrupt[p:0.2]")
    assert json.loads((model_dir / "config.json").read_text())["x0_sampler"] == "corrupt[p:0.2]"
    warnings = []
    monkeypatch.setattr(pipeline_editflow.logger, "warning", lambda *args: warnings.append(args[0] % args[1:]))

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    noisy = _noisy_copies(tokenizer, lines)
    revise = pipeline("editflow-generation", model=str(model_dir), pipeline_class=pipeline_editflow.EditFlowGenerationPipeline)
    revised = [o["generated_text"] for [o] in revise(noisy, edit_prompt=True, mask_length=0, tau=0.02, temperature=0, seed=0,
                                                   progress_bar=False)]  # fmt: skip

    def mean_distance(texts):
        return np.mean([Levenshtein.distance(tokenizer.encode(a, add_special_tokens=False), tokenizer.encode(b, add_special_tokens=False))
                        for a, b in zip(texts, lines)])  # fmt: skip

    assert mean_distance(noisy) > 1.0
    assert mean_distance(revised) < mean_distance(noisy)
    assert warnings == []

    masks_only = tmp_path / "masks-only"
    shutil.copytree(model_dir, masks_only)
    config = json.loads((masks_only / "config.json").read_text())
    (masks_only / "config.json").write_text(json.dumps({**config, "x0_sampler": "masks[length:64]"}))
    edit = pipeline("editflow-generation", model=str(masks_only), pipeline_class=pipeline_editflow.EditFlowGenerationPipeline)
    edit(noisy[:2], edit_prompt=True, mask_length=0, tau=0.5, seed=0, progress_bar=False)
    assert len(warnings) == 1 and "masks[length:64]" in warnings[0] and "corrupt" in warnings[0]
    edit(noisy[0], mask_length=4, tau=0.5, seed=0, progress_bar=False)  # not editing: nothing to say
    assert len(warnings) == 1


def test_restoration_revises_with_the_checkpoints_edit_rule():
    """The restoration test samples as the generation config says: a model that finds every edit unlikely (rate 0.1
    per unit w everywhere) rewrites corrupted text under tau-leaping, and leaves it as it is under the threshold
    rule."""
    from builders import BOS, tiny_editflow_model

    model = tiny_editflow_model(vocab_size=48, hidden_size=16, num_hidden_layers=1)
    with torch.no_grad():
        model.rate_head.weight.zero_()
        model.rate_head.bias.fill_(math.log(math.expm1(0.1)))
    features = [{"input_ids": [BOS, *range(10 + i, 40 + i)], "prompt_len": 1} for i in range(4)]
    kwargs = dict(tau=0.01, temperature=0.0, max_length=48, seed=0)
    tau_leaping = evaluation.restoration(model, features, 0.2, **kwargs)
    threshold = evaluation.restoration(model, features, 0.2, edit_rule="threshold", **kwargs)
    assert threshold["edit_rule"] == "threshold" and tau_leaping["edit_rule"] == "sample"
    assert threshold["edit_distance_after"] == threshold["edit_distance_before"] == tau_leaping["edit_distance_before"]
    gain = evaluation.restoration(model, features, 0.2, edit_rule="gain", gain_margin=0.3, **kwargs)
    assert gain["edit_rule"] == "gain" and gain["gain_margin"] == 0.3
    assert gain["edit_distance_after"] == gain["edit_distance_before"]
    assert tau_leaping["edit_distance_after"] > tau_leaping["edit_distance_before"] + 3


def test_eval_samples_with_every_setting_of_the_checkpoints_generation_config(tiny_editflow_dir, tmp_path):
    """editflow-eval samples through the one sampling entry of generate (`sampler_for`): a top_k written into the
    checkpoint's generation_config.json changes its samples, and the run records the write order it used."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_editflow_dir, checkpoint)
    kwargs = dict(task="sft", max_length=64, num_t=1, num_samples=4, num_examples=4, corrupt_p=0, mask_length=8, tau=0.1)
    data = str(REPO_ROOT / "tests/fixtures/qa.jsonl[train:4]")

    def examples(**overrides):
        result = evaluation.evaluate(str(checkpoint), data, **{**kwargs, **overrides})
        return result["generation"]["examples"], result["generation"]

    before, generation = examples()
    assert generation["write_order"] == "parallel" and 0.0 <= generation["repeated_word_rate"] <= 1.0
    assert examples()[0] == before  # the same seed: the same samples
    config_file = checkpoint / "generation_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "top_k": 1}))
    assert examples()[0] != before
    assert examples(write_order="frontier")[1]["write_order"] == "frontier"
    assert generation["no_repeat_adjacent"] is False  # the default of a head without a shift
    assert examples(no_repeat_adjacent=True)[1]["no_repeat_adjacent"] is True


def test_sampling_flags_reach_the_pipeline_arguments():
    """editflow-sample / editflow-chat: --write_order and --no_repeat_adjacent become pipeline arguments; unset,
    they are left out so the checkpoint's generation config decides."""
    from editflow_hf.sampling_flags import build_parser, sampling_kwargs

    parse = lambda *flags: sampling_kwargs(build_parser("editflow-sample").parse_args(["--model_name_or_path", "m", *flags]))
    assert "no_repeat_adjacent" not in parse() and "write_order" not in parse()
    assert parse("--no_repeat_adjacent")["no_repeat_adjacent"] is True
    assert parse("--no_repeat_adjacent", "False", "--write_order", "frontier") == {"no_repeat_adjacent": False, "write_order": "frontier"}


def test_repeated_words_are_counted_case_and_punctuation_aside():
    assert evaluation.repeats_a_word("The capital capital of Germany.")
    assert evaluation.repeats_a_word("Berlin is in Germany, germany!")
    assert not evaluation.repeats_a_word("The capital of Germany is Berlin.")
    assert not evaluation.repeats_a_word("")

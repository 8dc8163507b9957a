"""Generation the transformers way (issue K): EditFlowGenerationConfig and its validate(), model.generate(), the
pipeline as glue around it, text out, one position rule, fixed / free infill; and the generation-side size checks
of issue L (every size input refused in one line before anything is allocated)."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, GenerationConfig, pipeline

import editflow_hf
from editflow_hf.apps import sample as sample_cli
from editflow_hf.visualize import TokenDisplay, trace_frames
from editflow_hf.modeling.generation_editflow import EditFlowGenerationConfig

from builders import make_pipe, minilm_dir, tiny_encoder_kwargs
from conftest import REPO_ROOT, run_without_editflow_hf

QUIET = dict(progress_bar=False)


@pytest.fixture(scope="module")
def pipe(tiny_editflow_dir):
    return make_pipe(tiny_editflow_dir)


@pytest.fixture(scope="module")
def tuned_checkpoint(tiny_editflow_dir, tmp_path_factory):
    """A copy of the tiny checkpoint with its own sampling defaults (tau 0.25, 6 masks, top_k 20)."""
    folder = tmp_path_factory.mktemp("tuned") / "model"
    shutil.copytree(tiny_editflow_dir, folder)
    EditFlowGenerationConfig(tau=0.25, mask_length=6, top_k=20).save_pretrained(folder)
    return folder


def row_tokens(output, index: int = 0) -> list[int]:
    return output.sequences[index, : int(output.lengths[index])].tolist()


# --- the generation config ----------------------------------------------------------------------------------------


def test_model_generation_config_is_the_checkpoints_edit_flow_config(tuned_checkpoint):
    model = AutoModel.from_pretrained(tuned_checkpoint)
    assert isinstance(model.generation_config, EditFlowGenerationConfig)
    assert (model.generation_config.tau, model.generation_config.mask_length, model.generation_config.top_k) == (0.25, 6, 20)
    saved = json.loads((tuned_checkpoint / "generation_config.json").read_text())
    assert saved["tau"] == 0.25 and saved["infill"] == "free" and saved["compile"] is False
    stock = GenerationConfig.from_pretrained(tuned_checkpoint)  # a stock GenerationConfig reads the file too
    assert stock.tau == 0.25 and stock.mask_length == 6


def test_generation_config_of_earlier_checkpoints_still_loads(tiny_editflow_dir, tmp_path):
    folder = shutil.copytree(tiny_editflow_dir, tmp_path / "old")
    old = {"chat_template": True, "do_sample": True, "mask_length": 32, "tau": 0.01, "temperature": 1.0, "top_k": 0,
           "top_p": 1.0, "transformers_version": "5.0.0"}  # fmt: skip
    (folder / "generation_config.json").write_text(json.dumps(old))
    config = AutoModel.from_pretrained(folder).generation_config
    assert isinstance(config, EditFlowGenerationConfig)
    assert config.summary() == {"tau": 0.01, "mask_length": 32, "temperature": 1.0, "top_p": 1.0, "top_k": 0,
                                "chat_template": True, "infill": "free"}  # fmt: skip


BAD_SETTINGS = [
    (dict(tau=0), "`tau`"),
    (dict(tau=float("nan")), "`tau`"),
    (dict(temperature=-1.0), "`temperature`"),
    (dict(top_p=0.0), "`top_p`"),
    (dict(top_k=-2), "`top_k`"),
    (dict(mask_length=-1), "`mask_length`"),
    (dict(mask_length=2.5), "`mask_length`"),
    (dict(max_length=1), "`max_length`"),
    (dict(max_new_tokens=0), "`max_new_tokens`"),
    (dict(num_return_sequences=0), "`num_return_sequences`"),
    (dict(infill="some"), "`infill`"),
    (dict(edit_prompt="yes"), "`edit_prompt`"),
    (dict(seed="0"), "`seed`"),
    (dict(num_beams=4), "`num_beams`"),
    (dict(strength=0.0), "`strength`"),
    (dict(strength=1.5), "`strength`"),
    (dict(edit_rule="greedy"), "`edit_rule`"),
    (dict(edit_rule="gain", gain_margin=1.0), "`gain_margin`"),
    (dict(gain_margin=-0.1), "`gain_margin`"),
    (dict(edit_rule="gain", infill="fixed"), "`edit_rule`"),
    (dict(suppress_tokens="[unused1]"), "`suppress_tokens`"),
]


@pytest.mark.parametrize("settings, name", BAD_SETTINGS)
def test_invalid_settings_are_refused_in_one_line_from_validate_at_every_entry(pipe, settings, name):
    model = pipe.model
    entries = {
        "config": lambda: EditFlowGenerationConfig(**settings),
        "generate": lambda: model.generate(torch.tensor([[model.config.bos_token_id]]), **settings),
        "pipeline call": lambda: pipe("hi", **settings, **QUIET),
        "pipeline(...)": lambda: pipeline("editflow-generation", model=model, tokenizer=pipe.tokenizer, **settings),
        "generation_config=": lambda: pipe("hi", generation_config=GenerationConfig(**settings), **QUIET),
    }
    for entry, call in entries.items():
        with pytest.raises(ValueError) as refused:
            call()
        message = str(refused.value)
        assert name in message and "\n" not in message, (entry, message)


def test_do_sample_false_is_a_deterministic_decode_at_the_papers_settings(pipe):
    """do_sample=False (or temperature 0) gives the same output every call, seed or not; its tokens are drawn at the
    paper's temperature 0.8 and top-p 0.5 (argmax collapses a pretrained model into punctuation: RESULTS.md), and
    top_k=1 still takes the most likely token."""
    settings = dict(tau=0.25, mask_length=6, **QUIET)
    assert pipe("To be", do_sample=False, **settings) == pipe("To be", do_sample=False, **settings)
    assert pipe("", temperature=0, **settings) == pipe("", temperature=0, **settings)

    def sampler(**settings):
        return pipe.model.prepare_decode(generation_config=pipe.generation_config, **settings).sampler

    assert (sampler(do_sample=False).token_rule.temperature_at(0.5), sampler(do_sample=False).token_rule.top_p) == (0.8, 0.5)
    assert (sampler(do_sample=False).seed, sampler(do_sample=False, seed=7).seed) == (0, 7)
    assert sampler(top_k=1).token_rule.top_k == 1


def test_do_sample_false_does_not_write_one_token_everywhere(pipe):
    """The collapse of argmax: while x_t is mostly masks, every masked position reads nearly the same context and the
    most likely token is the same everywhere (a pretrained model's comma: ",,,,", RESULTS.md; a word on this random
    model). do_sample=False does not collapse; top_k=1, which is argmax, does."""

    def most_common_share(**settings) -> float:
        outputs = pipe(["", "To be"], num_return_sequences=5, tau=0.25, mask_length=16, seed=0, **settings, **QUIET)
        words = [word for per_input in outputs for out in per_input for word in out["generated_text"].split()]
        return Counter(words).most_common(1)[0][1] / len(words)

    assert most_common_share(top_k=1) > 0.5
    assert most_common_share(do_sample=False) < 0.2


def test_greedy_tokens_still_return_several_sequences(pipe):
    """Unlike a left-to-right decode, greedy tokens leave the edits random: num_return_sequences > 1 is allowed."""
    out = pipe("the cat", do_sample=False, num_return_sequences=3, tau=0.25, mask_length=4, seed=0, **QUIET)
    assert len(out) == 3


# --- generate() ---------------------------------------------------------------------------------------------------


def test_generate_without_editflow_hf_matches_the_pipeline(tuned_checkpoint):
    """In a process that cannot import editflow_hf: model.generation_config is the checkpoint's
    EditFlowGenerationConfig and model.generate() returns the pipeline's sequences for the same seed and settings."""
    proc = run_without_editflow_hf(
        f"""
        import torch
        from transformers import AutoModel, AutoTokenizer, pipeline
        path = {str(tuned_checkpoint)!r}
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        config = model.generation_config
        assert type(config).__name__ == "EditFlowGenerationConfig", type(config)
        assert type(config).__module__.startswith("transformers_modules"), type(config).__module__
        assert (config.tau, config.mask_length, config.top_k) == (0.25, 6, 20)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        pipe = pipeline("editflow-generation", model=path, trust_remote_code=True)
        prompts = ["the cat sat", "hello"]
        outs = pipe(prompts, seed=3, num_return_sequences=2, return_trace=True, progress_bar=False)
        from_pipe = [o["trace"]["steps"][-1]["tokens"] if o["trace"]["steps"] else o["trace"]["initial"]
                     for per_input in outs for o in per_input]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True)  # BOS ... EOS, padded: generate drops them
        out = model.generate(**inputs, seed=3, num_return_sequences=2, return_dict_in_generate=True, output_history=True)
        from_generate = [out.sequences[i, : out.lengths[i]].tolist() for i in range(4)]
        assert from_generate == from_pipe, (from_generate, from_pipe)
        assert [h.final_tokens for h in out.history] == from_generate
        plain = model.generate(**inputs, seed=3, num_return_sequences=2)
        assert torch.equal(plain, out.sequences)
        print("GENERATE-OK")
        """
    )
    assert "GENERATE-OK" in proc.stdout


def test_generate_defaults_history_and_length_cap(tuned_checkpoint):
    model = AutoModel.from_pretrained(tuned_checkpoint)
    bos, mask = model.config.bos_token_id, model.config.mask_token_id
    out = model.generate(return_dict_in_generate=True, output_history=True, seed=0)  # unconditional, the defaults
    assert out.history[0].initial == [bos] + [mask] * 6  # the checkpoint's mask_length
    assert max(step.step for step in out.history[0].steps) <= 4  # its tau 0.25: four steps
    with torch.no_grad():
        model.rate_head.bias.fill_(3.0)  # edits fire a lot: the rows want to grow
    sequences = model.generate(torch.tensor([[bos, 2000, 2001, 2002]]), max_length=10, mask_length=64, seed=0)
    assert sequences.shape[1] <= 10  # max_length caps the result (the masks are trimmed to fit)


def test_readme_generation_snippet_takes_what_a_wordpiece_tokenizer_returns(minilm_editflow_dir):
    """The README's Generation lines on a BERT-family checkpoint (the quickstart's MiniLM): its tokenizer returns
    token_type_ids, which generate() takes as transformers' generate() does; x_t is re-encoded whole at every step,
    so they change nothing."""
    model = AutoModel.from_pretrained(minilm_editflow_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(minilm_editflow_dir, trust_remote_code=True)
    inputs = tokenizer(["To be", "Once upon a time"], return_tensors="pt", padding=True)
    assert "token_type_ids" in inputs
    settings = dict(tau=0.25, max_length=24, seed=0)  # the README's call, in 4 steps
    sequences = model.generate(**inputs, **settings)
    assert sequences.shape[0] == 2 and sequences.shape[1] <= 24
    prompts_only = dict(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert torch.equal(sequences, model.generate(**prompts_only, **settings))
    as_transformers_names_it = model.generate(inputs=inputs["input_ids"], attention_mask=inputs["attention_mask"], **settings)
    assert torch.equal(sequences, as_transformers_names_it)
    out = model.generate(**inputs, return_dict_in_generate=True, output_history=True, tau=0.25)
    assert len(out.history) == 2 and out.sequences.shape[0] == 2


@pytest.mark.parametrize(
    "settings, fix",
    [
        (dict(temprature=0.5), "did you mean 'temperature'?"),
        (dict(colour="red"), "pass fields of EditFlowGenerationConfig"),
        (dict(streamer=object()), "iter_steps"),
        (dict(logits_processor=[lambda ids, scores: scores]), "suppress_tokens"),
        (dict(stopping_criteria=[lambda ids, scores: True]), "max_new_tokens"),
        (dict(token_type_ids=torch.tensor([[0, 0, 1]])), "one text per row"),
        (dict(inputs=torch.tensor([[1, 5, 6]])), "not both"),
    ],
)
def test_generate_refuses_real_mistakes_in_one_line_naming_the_fix(pipe, settings, fix):
    bos = pipe.model.config.bos_token_id
    with pytest.raises((TypeError, ValueError)) as refused:
        pipe.model.generate(torch.tensor([[bos, 2000, 2001]]), tau=0.5, **settings)
    message = str(refused.value)
    assert fix in message and "\n" not in message, message


# --- what is written: no reserved entries, no dangling piece -----------------------------------------------------------


def reserved_entries(tokenizer) -> set[int]:
    """Written out independently of the library: BERT's [unusedN] entries and the special tokens but EOS."""
    unused = {index for token, index in tokenizer.get_vocab().items() if re.fullmatch(r"\[unused\d+\]", token)}
    return (unused | set(tokenizer.all_special_ids)) - {tokenizer.eos_token_id}


def written_tokens(pipe, seeds: int = 20, **settings) -> list[tuple[list[int], str]]:
    """(tokens after the prompt, text) over `seeds` seeds, unconditional and prompted."""
    outputs = []
    for seed in range(seeds):
        for [out] in pipe(["", "To be"], tau=0.25, mask_length=8, seed=seed, return_trace=True, **settings, **QUIET):
            trace = out["trace"]
            final = trace["steps"][-1]["tokens"] if trace["steps"] else trace["initial"]
            outputs.append((final[trace["prompt_len"] :], out["generated_text"]))
    return outputs


def test_reserved_and_special_vocabulary_entries_are_not_written_over_20_seeds(pipe):
    """The checkpoint's generation config suppresses [unusedN] and the special tokens but EOS, as converted; the
    random model writes them when allowed to (`suppress_tokens=[]`), so the default is what keeps them out. (Masks
    of x0 that no edit replaced in the 4 steps are left out: they were never written.)"""
    reserved = reserved_entries(pipe.tokenizer)
    assert len(reserved) > 990 and set(pipe.model.generation_config.suppress_tokens) == reserved
    reserved.discard(pipe.tokenizer.mask_token_id)
    outputs = written_tokens(pipe)
    assert not [token for tokens, _ in outputs for token in tokens if token in reserved]
    assert not [text for _, text in outputs if "[unused" in text or "[UNK]" in text]
    assert [token for tokens, _ in written_tokens(pipe, suppress_tokens=[]) for token in tokens if token in reserved]


def test_trained_checkpoints_record_the_reserved_entries_of_an_older_conversion(tiny_editflow_dir, tmp_path):
    from editflow_hf.training.cli import save_generation_config

    start = shutil.copytree(tiny_editflow_dir, tmp_path / "start")
    EditFlowGenerationConfig(tau=0.05).save_pretrained(start)  # converted before suppress_tokens were recorded
    save_generation_config(tmp_path, str(start), "pt", "masks[length:8]")
    saved = EditFlowGenerationConfig.from_pretrained(tmp_path)
    assert set(saved.suppress_tokens) == reserved_entries(AutoTokenizer.from_pretrained(start))


# --- the pipeline as glue ------------------------------------------------------------------------------------------


def test_pipeline_takes_a_generation_config_from_pretrained(pipe, tuned_checkpoint):
    [out] = pipe("hello", generation_config=GenerationConfig.from_pretrained(tuned_checkpoint), seed=0, return_trace=True, **QUIET)
    assert out["trace"]["initial"].count(pipe.tokenizer.mask_token_id) == 6  # its mask_length
    assert all(step["step"] <= 4 for step in out["trace"]["steps"])  # its tau
    configured = pipeline("editflow-generation", model=pipe.model, tokenizer=pipe.tokenizer, tau=0.5)
    [out] = configured("hello", mask_length=2, seed=0, return_trace=True, **QUIET)  # pipeline(...) settings stay
    assert all(step["step"] <= 2 for step in out["trace"]["steps"]) and out["trace"]["initial"].count(pipe.tokenizer.mask_token_id) == 2


def test_max_length_caps_the_text_instead_of_refusing(tiny_editflow_dir):
    growing = make_pipe(tiny_editflow_dir, rate_bias=[-4.0, -4.0, 3.0])
    prompt = "to be or not"
    for seed in range(3):
        [out] = growing(prompt, max_length=10, seed=seed, tau=0.2, return_trace=True, **QUIET)
        lengths = [len(out["trace"]["initial"])] + [len(step["tokens"]) for step in out["trace"]["steps"]]
        assert max(lengths) <= 10
        assert len(growing.tokenizer(out["generated_text"], add_special_tokens=False)["input_ids"]) <= 10
    [out] = growing("to be or not to be that is the question", max_length=10, seed=0, **QUIET)  # the prompt fills it:
    assert out["generated_text"] == ""  # nothing generated, as generate() does (with a warning), rather than refused


def test_iter_steps_is_the_pipelines_one_streaming_path(pipe):
    kwargs = dict(tau=0.25, mask_length=4, seed=5, return_trace=True)
    steps = list(pipe.iter_steps(["hello", "the cat"], **kwargs, **QUIET))
    assert steps[-1].outputs == pipe(["hello", "the cat"], batch_size=2, **kwargs, **QUIET)


def test_edit_mode_strength_runs_the_end_of_the_path_and_keeps_bos(pipe):
    """strength s places the text at t = 1 - s: ceil(s / tau) steps, the first starting there, BOS unchanged."""
    seen_t = []
    model = pipe.model
    hook = model.edit_rates
    model.edit_rates = lambda ids, mask, t: (seen_t.append(float(t[0])), hook(ids, mask, t))[1]
    try:
        kwargs = dict(tau=0.1, edit_prompt=True, mask_length=0, seed=0, **QUIET)
        full = list(pipe.iter_steps("the cat sat on the mat", **kwargs))
        assert [s.num_steps for s in full[:1]] == [10] and full[-1].t == 1.0
        seen_t.clear()
        late = list(pipe.iter_steps("the cat sat on the mat", strength=0.25, **kwargs))
    finally:
        del model.edit_rates
    assert [step.num_steps for step in late[:1]] == [3] and len(late) == 3
    assert [round(step.t, 6) for step in late] == [0.85, 0.95, 1.0]
    assert seen_t and seen_t[0] == pytest.approx(0.75)  # the model is asked at the start time, not at 0
    for step in late:
        for row in step.rows:
            assert row is None or row.tokens[0] == model.config.bos_token_id


def test_gain_rule_and_its_margin_reach_the_sampler_from_generate():
    """edit_rule="gain" through generate(): a model sure of an edit everywhere (sub + del rate 1.8 per unit w, so no
    position is likely right) edits; a margin above every edit's expected gain (0.99) keeps the text."""
    from builders import BOS, tiny_editflow_model

    model = tiny_editflow_model(vocab_size=48, hidden_size=16, num_hidden_layers=1).eval()
    with torch.no_grad():
        model.rate_head.weight.zero_()
        model.rate_head.bias.fill_(math.log(math.expm1(0.9)))
    text = torch.tensor([[BOS, *range(10, 30)]])
    kwargs = dict(edit_prompt=True, mask_length=0, tau=0.1, edit_rule="gain", progress_bar=False)
    assert model.generate(text, **kwargs).tolist() != text.tolist()
    assert model.generate(text, gain_margin=0.99, **kwargs).tolist() == text.tolist()


# --- text out ------------------------------------------------------------------------------------------------------


def test_no_text_starts_with_a_dangling_word_piece_for_any_prompt_over_20_seeds(pipe):
    """A WordPiece model: the continuation is decoded together with the prompt and the prompt's text cut off, so a
    first "##" piece joins what precedes it; with no prompt text (unconditional, or a prompt of emoji, which this
    tokenizer reads as [UNK] only) the text starts at its first whole word."""
    texts = []
    for seed in range(20):
        for [out] in pipe(["", "To be", "\U0001f600" * 40], tau=0.25, mask_length=4, seed=seed, **QUIET):
            texts.append(out["generated_text"])
    assert not [text for text in texts if text.startswith("##")]
    assert any(text for text in texts)


def test_text_with_no_prompt_text_before_it_starts_at_its_first_whole_word(pipe):
    tokenizer = pipe.tokenizer
    generated = tokenizer.convert_tokens_to_ids(["##ing", "##s", "the", "king"])
    assert pipe.continuation_text([], generated) == "the king"
    assert pipe.continuation_text([tokenizer.unk_token_id] * 3, generated) == "the king"
    to_be = tokenizer("to be", add_special_tokens=False)["input_ids"]
    assert pipe.continuation_text(to_be, generated) == "ings the king"  # joins the prompt's last word: "to beings"


def test_printed_text_terminal_trace_and_gif_last_frame_agree(tiny_editflow_dir, tmp_path, monkeypatch, capsys):
    from editflow_hf import visualize as trace_views

    drawn = {}

    def capture_frames(trace, tokenizer, *args, final_text=None, **kwargs):
        drawn["final"] = trace_frames(TokenDisplay(tokenizer), trace, final_text)[-1]
        return 1

    monkeypatch.setattr(trace_views, "make_gif", capture_frames)
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--prompt", "To be", "--tau", "0.25", "--mask_length", "6",
            "--seed", "1", "--make_gif", "--show_trace", "--no_progress", "--gif_path", str(tmp_path / "t.gif")]  # fmt: skip
    assert sample_cli.main(args) == 0
    captured = capsys.readouterr()
    printed = captured.out.strip()
    caption, segments = drawn["final"]
    assert caption == "final" and " ".join(s.text for s in segments if s.kind == "plain") == printed
    [final_line] = [line for line in captured.err.splitlines() if line.startswith("[final]")]
    assert final_line.endswith(printed)  # the terminal trace's final line


def test_final_frame_stops_at_eos_like_the_printed_text(pipe):
    tokenizer = pipe.tokenizer
    words = tokenizer("alpha beta gamma", add_special_tokens=False)["input_ids"]
    bos, eos = pipe.model.config.bos_token_id, pipe.model.config.eos_token_id
    trace = {"prompt_len": 1, "initial": [bos], "steps": [
        {"step": 1, "t": 1.0, "tokens": [bos, words[0], words[1], eos, words[2]], "inserted": [1, 2, 3, 4], "substituted": [], "deleted": []}
    ]}  # fmt: skip
    _, segments = trace_frames(TokenDisplay(tokenizer), trace)[-1]
    assert [s.text for s in segments] == ["alpha", "beta"]
    assert pipe.continuation_text([], pipe.generated_ids(trace["steps"][0]["tokens"], 1)) == "alpha beta"


# --- infill ------------------------------------------------------------------------------------------------------


def test_fixed_length_infill_turns_each_mask_into_one_token(tiny_editflow_dir):
    growing = make_pipe(tiny_editflow_dir, rate_bias=[0.0, 0.0, 3.0])  # insertions fire often
    tokenizer = growing.tokenizer
    a, b = tokenizer("a b", add_special_tokens=False)["input_ids"]
    prompt = f"a {tokenizer.mask_token} {tokenizer.mask_token} b"
    free_lengths = set()
    for seed in range(4):
        [fixed] = growing(prompt, infill="fixed", mask_length=0, tau=0.25, seed=seed, return_trace=True, **QUIET)
        final = fixed["trace"]["steps"][-1]["tokens"]
        assert final[0] == growing.model.config.bos_token_id and final[1] == a and final[-1] == b
        assert len(final) == 5 and tokenizer.mask_token_id not in final  # exactly two tokens between a and b
        assert fixed["infill"] == "fixed"
        [free] = growing(prompt, mask_length=0, tau=0.25, seed=seed, return_trace=True, **QUIET)
        assert free["infill"] == "free"
        free_lengths.add(len(free["trace"]["steps"][-1]["tokens"]))
    assert max(free_lengths) > 5  # the default (free) lets the spans grow


# --- sizes: refused in one line before anything is allocated (issue L item 2) --------------------------------------


def test_size_inputs_refused_within_a_second_under_a_2gb_address_space(tiny_editflow_dir):
    """Each size-like input far too large: one ValueError line within a second, while the process may not grow past
    2 GiB of address space (a billion masks alone would need 8 GB)."""
    code = f"""
        import resource, time
        import editflow_hf
        editflow_hf.register()
        from transformers import AutoModel, AutoTokenizer, pipeline
        path = {str(tiny_editflow_dir)!r}
        pipe = pipeline("editflow-generation", model=AutoModel.from_pretrained(path), tokenizer=AutoTokenizer.from_pretrained(path))
        used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        limit = max(2 << 30, used + (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        huge = 10**9
        cases = [("To be", dict(mask_length=huge)), ("To be", dict(max_length=huge)), ("To be", dict(max_new_tokens=huge)),
                 ("To be", dict(num_return_sequences=huge)), ("To be", dict(batch_size=huge)), ("word " * 10**7, dict()),
                 (["To be"] * 3, dict(mask_length=huge, batch_size=2))]
        for prompt, kwargs in cases:
            start = time.monotonic()
            try:
                pipe(prompt, progress_bar=False, **kwargs)
            except ValueError as err:
                message = str(err)
            else:
                raise AssertionError(f"accepted {{kwargs}}")
            elapsed = time.monotonic() - start
            assert elapsed < 1.0 and "\\n" not in message, (kwargs, elapsed, message)
            print("REFUSED", sorted(kwargs) or ["prompt"], message)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("REFUSED") == 7, proc.stdout


@pytest.mark.parametrize(
    "flags, flag",
    [(["--mask_length", "1000000000"], "--mask_length"), (["--max_length", "1000000000"], "--max_length"),
     (["--max_new_tokens", "1000000000"], "--max_new_tokens"), (["--num_samples", "1000000000"], "--num_samples"),
     (["--batch_size", "0"], "--batch_size")],
)  # fmt: skip
def test_size_flags_of_the_sample_cli_are_refused_in_one_line(tiny_editflow_dir, capsys, flags, flag):
    assert sample_cli.main(["--model_name_or_path", str(tiny_editflow_dir), "--no_progress", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


# --- one position rule -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_roberta_editflow(tmp_path_factory):
    """A tiny RoBERTa Edit Flow model with 12 position rows: its positions start after the padding index (0 here),
    so it takes 11 tokens."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    from editflow_hf.apps.convert import convert

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    source = tmp_path_factory.mktemp("tiny-roberta") / "mlm"
    torch.manual_seed(0)
    RobertaForMaskedLM(RobertaConfig(**tiny_encoder_kwargs(len(tokenizer)), pad_token_id=tokenizer.pad_token_id,
                                     max_position_embeddings=12)).save_pretrained(source)  # fmt: skip
    tokenizer.save_pretrained(source)
    return convert(str(source), source.parent / "editflow")


def test_tiny_roberta_at_its_position_limit_is_refused_by_every_entry_point(tiny_roberta_editflow, monkeypatch, capsys):
    model = AutoModel.from_pretrained(tiny_roberta_editflow)
    assert model.config.max_sequence_length == 11
    from editflow_hf.training.positions import encoder_positions

    assert encoder_positions(model.config) == 11  # training checks and generation share the rule
    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta_editflow)
    generator = pipeline("editflow-generation", model=model, tokenizer=tokenizer)
    forwards = []
    monkeypatch.setattr(type(model), "forward", lambda self, *a, **k: forwards.append(1))
    prompt = " ".join(["word"] * 11)  # 11 tokens + BOS: one more than the positions
    refusals = []
    for call in (
        lambda: generator(prompt, **QUIET),
        lambda: list(generator.iter_steps(prompt, **QUIET)),
        lambda: model.generate(tokenizer([prompt], return_tensors="pt")["input_ids"]),
        lambda: generator("hi", max_length=12, **QUIET),
    ):
        with pytest.raises(ValueError) as refused:
            call()
        refusals.append(str(refused.value))
    assert all("\n" not in message and ("11" in message) for message in refusals), refusals
    capsys.readouterr()  # the loading above
    assert sample_cli.main(["--model_name_or_path", str(tiny_roberta_editflow), "--prompt", prompt, "--no_progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "positions" in err
    assert forwards == []  # none reached the forward


def test_tiny_roberta_generates_up_to_its_limit_without_an_index_error(tiny_roberta_editflow):
    model = AutoModel.from_pretrained(tiny_roberta_editflow)
    with torch.no_grad():
        model.rate_head.bias.fill_(3.0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta_editflow)
    generator = pipeline("editflow-generation", model=model, tokenizer=tokenizer)
    [out] = generator(" ".join(["word"] * 9), mask_length=8, tau=0.25, seed=0, return_trace=True, **QUIET)
    assert max(len(step["tokens"]) for step in out["trace"]["steps"]) <= 11


# --- apps read the checkpoint's generation config -----------------------------------------------------------------


def test_space_controls_open_at_the_checkpoints_generation_config(tuned_checkpoint):
    sys.path.insert(0, str(REPO_ROOT / "space"))
    try:
        import app as space_app
    finally:
        sys.path.pop(0)
    space = space_app.EditFlowSpace(make_pipe(tuned_checkpoint), "tuned")
    assert space.defaults == {"tau": 0.25, "mask_length": 6, "temperature": 1.0, "infill": "free"}
    demo = space.build()
    values = {getattr(block, "label", None): getattr(block, "value", None) for block in demo.blocks.values()}
    assert values["tau (step size; 1/tau steps)"] == 0.25
    assert values["mask length (masks appended after the text)"] == 6


def test_pipeline_module_has_no_sampling_fallbacks():
    """Sampling defaults have one home, EditFlowGenerationConfig: the pipeline, sample CLI and Space hold none."""
    for path in ("modeling/pipeline_editflow.py", "editflow_hf/sampling_flags.py", "space/app.py"):
        source = (REPO_ROOT / path).read_text()
        assert "0.01 if" not in source and "value=0.02" not in source and "EDITFLOW_GENERATION_DEFAULTS" not in source, path

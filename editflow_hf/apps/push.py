"""Publish an Edit Flow checkpoint folder to the Hugging Face Hub, with a generated model card.

    editflow-push .models/editflow/ModernBERT-large/alpaca/checkpoint-final --repo_id you/editflow-alpaca --dry-run
    editflow-push .models/editflow/ModernBERT-large/alpaca/checkpoint-final --repo_id you/editflow-alpaca --gif decode_trace.gif

The folder must be a complete Hub repo (config with `auto_map` + `custom_pipelines`, safetensors weights, the
remote code, the tokenizer) so that `AutoModel.from_pretrained(repo, trust_remote_code=True)` and
`pipeline("editflow-generation", model=repo, trust_remote_code=True)` work for anyone. The card (README.md: the
folder's own when it has one, else a generated card) and the GIF are uploaded from memory / their own path: the
folder is never modified. `--dry-run` lists the files and prints the card; it writes and uploads nothing.
"""

import argparse
import sys

from ..errors import run_cli
from ..hub.card import DEFAULT_LICENSE, EVAL_RESULTS_FILE
from ..hub.upload import plan_upload, push_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="editflow-push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="Checkpoint folder to publish (e.g. <output_dir>/checkpoint-final).")
    parser.add_argument("--repo_id", "--repo-id", required=True, help="Target Hub repo, `namespace/name`.")
    parser.add_argument("--private", action="store_true", help="Create the repo private.")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="List the repo's files and print the card; write and upload nothing.")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or the `hf auth login` token).")
    parser.add_argument("--gif", default=None, help="Decode-trace GIF of one sample to embed in the card (uploaded with it).")
    parser.add_argument("--base_model", default=None, help="Base encoder for the card (default: the encoder's name in config.json).")
    parser.add_argument("--dataset", default=None, help="Training dataset(s) for the card, `a|b` (default: from training_args.json).")
    parser.add_argument("--commit_message", default=None, help="Commit message of the upload.")
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help=f"License in the card's metadata, the base model's (default {DEFAULT_LICENSE}; e.g. mit for RoBERTa).",
    )
    parser.add_argument(
        "--eval_results", default=None,
        help=f"editflow-eval JSON for the card's model-index (default: {EVAL_RESULTS_FILE} in the checkpoint, if any).",
    )
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: _push_from_args(args))


def _push_from_args(args) -> int:
    card_options = dict(
        base_model=args.base_model, dataset=args.dataset, gif_path=args.gif, license=args.license,
        eval_results=args.eval_results,
    )  # fmt: skip
    if args.dry_run:
        plan = plan_upload(args.checkpoint, args.repo_id, **card_options)
        print("\n".join(plan.repo_files))
        print()
        print(plan.card)
        if not plan.card_is_generated:
            print("editflow-push: the card is the folder's own README.md (delete it to use the generated one)", file=sys.stderr)
        return 0
    result = push_checkpoint(
        args.checkpoint,
        args.repo_id,
        private=args.private,
        token=args.token,
        commit_message=args.commit_message,
        **card_options,
    )
    print(f"Pushed {args.checkpoint} to {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

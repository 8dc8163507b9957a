"""Sample text from an Edit Flow checkpoint by tau-leaping.

    editflow-sample --model_name_or_path .models/editflow/ModernBERT-large/tiny-shakespeare/checkpoint-final \\
        --tau 0.01 --mask_length 64 --seed 42 --make_gif          # writes decode_trace.gif

    editflow-sample --model_name_or_path CKPT --prompt "Could you please write a poem for me?"      # chat turn
    editflow-sample --model_name_or_path CKPT --prompt "To be or [MASK] [MASK] be" --mask_length 0   # infill
    editflow-sample --model_name_or_path CKPT --prompt "Once upon a time" --chat_template False      # continue text

Sampling defaults (tau, mask_length, temperature, top_p, top_k) come from the checkpoint's generation_config.json;
flags override them. The prompt follows the pipeline's prompt rule: with `--chat_template auto` (the default) a
plain prompt is sent as a user message through the chat template when the checkpoint was fine-tuned on chats
(sft; `chat_template: true` in its generation_config.json) and as raw text when it was pretrained or only
converted; `--chat_template True`/`on` or `False`/`off` decide instead. Prompts with mask tokens (infill) and
--edit_prompt texts are always raw.

Prints the generated text of each sample (one block per sample, separated by a blank line).
"""

import argparse
import logging
import os
import re
import sys

from ..checkpoints import check_model_folder, loading_errors
from ..errors import EditFlowError, run_cli

# transformers (and torch) are imported where they are used, so that `--help` starts fast.


def str_to_bool(value: str) -> bool:
    """`True`/`False` (any case), `yes`/`no`, `1`/`0`: dLLM passes booleans as values (`--make_gif True`)."""
    lowered = str(value).lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, *names: str, help: str, dest: str | None = None) -> None:
    """A switch that also takes a value, as HfArgumentParser's booleans do: `--x`, `--x True`, `--x False`."""
    kwargs = {"dest": dest} if dest else {}
    parser.add_argument(*names, type=str_to_bool, nargs="?", const=True, default=False, help=help, **kwargs)


def refuse_dllm_sampling_flags(args) -> None:
    """dLLM sampler options that have no counterpart here: refused with what to do instead."""
    if args.time_epsilon is not None:
        raise EditFlowError("--time_epsilon is not needed: tau-leaping here steps to t = 1 exactly (the last step's rate "
                            "stays finite); drop it and set the step with --tau.")  # fmt: skip
    if not args.time_independent:
        raise EditFlowError("--time_independent False is not supported: the model predicts rates per unit of the "
                            "scheduler weight w(t), the same network at every t.")  # fmt: skip


def build_parser(prog: str = "editflow-sample", description: str = __doc__) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="Edit Flow checkpoint folder (or Hub id).")
    parser.add_argument("--tau", type=float, default=None, help="Tau-leaping step size in (0, 1], at least 1e-4 (at most 10,000 steps) (default: the checkpoint's generation config).")
    parser.add_argument("--mask_length", type=int, default=None, help="Masks appended after the prompt (default: the checkpoint's generation config: its x0 length).")
    parser.add_argument("--seed", type=int, default=None, help="Random seed: same seed, same output.")
    parser.add_argument("--temperature", type=float, default=None, help="Token temperature; 0 = greedy (default: the checkpoint's generation config).")
    parser.add_argument("--top_p", type=float, default=None, help="Nucleus sampling mass in (0, 1] (default: the checkpoint's generation config).")
    parser.add_argument("--top_k", type=int, default=None, help="Keep the k most likely tokens; 0 = all (default: the checkpoint's generation config).")
    parser.add_argument(
        "--chat_template",
        type=parse_chat_template,
        default=None,
        metavar="{auto,True,False}",
        help="Send a plain prompt as a user message through the chat template: auto (default) = as the checkpoint "
        "says (fine-tuned on chats or not); True / on; False / off = raw text.",
    )
    parser.add_argument("--max_length", type=int, default=None, help="Cap on the sequence length, BOS and prompt included: the masks are trimmed to fit (default: the model's positions).")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="Cap on the tokens after the prompt.")
    parser.add_argument("--infill", choices=("free", "fixed"), default=None, help="What a [MASK] in the prompt becomes: free = a span the model may grow or shrink, fixed = exactly one token (default: the checkpoint's generation config).")
    add_bool_flag(parser, "--edit_prompt", help="Let the model edit the prompt too.")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    add_bool_flag(parser, "--no_progress", help="Hide the progress bar.")
    parser.add_argument("--time_epsilon", type=float, default=None, help="dLLM's sampler option; refused (not needed here).")
    parser.add_argument("--time_independent", type=str_to_bool, default=True, help="dLLM's sampler option; only True.")
    return parser


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", default="", help='Prompt text; "" (default) generates unconditionally.')
    parser.add_argument("--num_samples", type=int, default=1, help="Number of samples of the prompt (default 1).")
    parser.add_argument("--batch_size", type=int, default=32, help="Samples decoded together (default 32).")
    add_bool_flag(parser, "--make_gif", help="Write the decode trace of the first sample as a GIF.")
    add_bool_flag(parser, "--show_trace", "--visualize", dest="show_trace", help="Print the decode trace with ANSI colours (dLLM: --visualize).")
    parser.add_argument("--gif_path", default="decode_trace.gif", help="Where --make_gif writes (default decode_trace.gif).")


def parse_chat_template(value: str) -> bool | None:
    """--chat_template: auto -> None (the checkpoint decides), True/on -> True, False/off -> False (dLLM spells
    it True/False)."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        return str_to_bool(value.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, True or False (or on/off), got {value!r}") from None


def check_text(text: str, what: str) -> None:
    """EditFlowError for text the tokenizer cannot encode (a lone surrogate, e.g. an undecodable byte of the command
    line or of stdin, which Python keeps as \\udcXX); the pipeline's own check, named for the command line."""
    from ..modeling.generation_editflow import check_text as check_encodable

    try:
        check_encodable(text, what)
    except ValueError as err:
        raise EditFlowError(str(err)) from None


def as_flags(message: str) -> str:
    """A generation-config message with its `setting` names spelled as command-line flags (`--setting`)."""
    return re.sub(r"`(\w+)`", r"`--\1`", message)


def check_common_args(args) -> None:
    """Reject bad values before loading the model, with the checks of the generation config (the flags given; the
    checkpoint's generation config fills the rest and the pipeline checks the merged values against the model)."""
    refuse_dllm_sampling_flags(args)
    from ..modeling.generation_editflow import MAX_BATCH_SIZE, EditFlowGenerationConfig, check_size

    try:
        EditFlowGenerationConfig(**sampling_kwargs(args))
        for name in ("num_samples", "batch_size"):
            if hasattr(args, name):
                check_size(name, getattr(args, name), 1, MAX_BATCH_SIZE)
    except ValueError as err:
        raise EditFlowError(as_flags(str(err))) from None
    if getattr(args, "prompt", None):
        check_text(args.prompt, "--prompt")
    path = args.model_name_or_path
    hub_id = re.fullmatch(r"[A-Za-z0-9_][\w.-]*(/[\w.-]+)?", path) is not None
    if not os.path.isdir(os.path.expanduser(path)) and not hub_id:
        raise EditFlowError(f"model folder {path!r} does not exist; pass the folder of an Edit Flow checkpoint.")


def load_pipeline(model_name_or_path: str, device: str | None = None):
    """The editflow-generation pipeline for a checkpoint, with this package's classes (no remote code needed)."""
    import editflow_hf  # noqa: F401  (registers the Edit Flow classes)
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ..modeling.pipeline_editflow import EditFlowGenerationPipeline

    check_model_folder(model_name_or_path)
    try:
        config = AutoConfig.from_pretrained(os.path.expanduser(model_name_or_path))
    except (OSError, ValueError) as err:
        raise EditFlowError(f"cannot load a model config from {model_name_or_path!r}: {str(err).splitlines()[0]}") from None
    if config.model_type != "editflow":
        raise EditFlowError(
            f"{model_name_or_path!r} is a {config.model_type!r} checkpoint, not an Edit Flow one; "
            "convert it first with editflow-convert."
        )
    with loading_errors(model_name_or_path):
        model = AutoModel.from_pretrained(model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    kwargs = {"device": device} if device else {}
    return EditFlowGenerationPipeline(model=model, tokenizer=tokenizer, task="editflow-generation", **kwargs)


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def sampling_kwargs(args) -> dict:
    """The pipeline arguments the flags give; unset flags are left out, so the checkpoint's defaults apply."""
    values = dict(
        tau=args.tau, mask_length=args.mask_length, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        chat_template=args.chat_template, max_length=args.max_length, max_new_tokens=args.max_new_tokens,
        infill=args.infill, seed=args.seed,
    )  # fmt: skip
    return {key: value for key, value in values.items() if value is not None}


def run(args) -> int:
    check_common_args(args)
    quiet_transformers()
    generator = load_pipeline(args.model_name_or_path, args.device)
    if not args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.enable_progress_bar()
    want_trace = args.make_gif or args.show_trace
    outputs = [
        output
        for outputs_of_prompt in generator(
            [args.prompt] * args.num_samples,
            **sampling_kwargs(args),
            edit_prompt=args.edit_prompt,
            batch_size=args.batch_size,
            return_trace=want_trace,
            progress_bar=not args.no_progress,
        )
        for output in outputs_of_prompt
    ]
    for index, output in enumerate(outputs):
        if index > 0:
            print()
        print(output["generated_text"])
    if "infill" in outputs[0]:
        meaning = "each mask became one token" if outputs[0]["infill"] == "fixed" else "the masked spans could grow or shrink"
        print(f"infill: {outputs[0]['infill']} ({meaning}; --infill fixed|free)", file=sys.stderr)
    if args.show_trace:
        from .trace import trace_to_ansi

        print(trace_to_ansi(outputs[0]["trace"], generator.tokenizer, outputs[0]["generated_text"]), file=sys.stderr)
    if args.make_gif:
        from .trace import make_gif

        frames = make_gif(outputs[0]["trace"], generator.tokenizer, args.gif_path, final_text=outputs[0]["generated_text"])
        print(f"decode trace ({frames} frames) written to {args.gif_path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    add_sample_arguments(parser)
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

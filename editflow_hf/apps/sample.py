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
import os
import re
import sys
from pathlib import Path

from ..errors import EditFlowError, run_cli
from ..flags import add_bool_flag, check_device
from ..sampling_flags import as_flags, build_parser, check_common_args, load_pipeline, quiet_transformers, sampling_kwargs


ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", default="", help='Prompt text; "" (default) generates unconditionally.')
    parser.add_argument("--num_samples", type=int, default=1, help="Number of samples of the prompt (default 1).")
    parser.add_argument("--batch_size", type=int, default=32, help="Samples decoded together (default 32).")
    add_bool_flag(parser, "--make_gif", help="Write the decode trace of the first sample as a GIF.")
    add_bool_flag(parser, "--show_trace", "--visualize", dest="show_trace", help="Print the decode trace with ANSI colours (dLLM: --visualize).")
    parser.add_argument("--gif_path", default="decode_trace.gif", help="Where --make_gif writes (default decode_trace.gif).")


def check_sample_args(args) -> None:
    """What the sampling run itself needs, checked before the model loads: the device, and the GIF's folder (a GIF
    into a missing folder failed after the whole sampling)."""
    check_device(args.device)
    if args.make_gif:
        gif = Path(args.gif_path).expanduser()
        if gif.is_dir():
            raise EditFlowError(f"--gif_path {args.gif_path} is a folder; pass a file path such as {gif / 'decode_trace.gif'}.")
        if not gif.parent.is_dir():
            raise EditFlowError(f"--gif_path {args.gif_path}: its folder {gif.parent} does not exist; create it or choose another path.")


def colour_wanted(stream) -> bool:
    """Whether ANSI colours may go to `stream`: a terminal, unless NO_COLOR is set (FORCE_COLOR forces them)."""
    if os.environ.get("FORCE_COLOR"):
        return True
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def run(args) -> int:
    check_common_args(args)
    check_sample_args(args)
    quiet_transformers()
    generator = load_pipeline(args.model_name_or_path, args.device)
    if not args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.enable_progress_bar()
    want_trace = args.make_gif or args.show_trace
    try:
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
    except ValueError as err:  # the settings checked against the model (its positions): named as flags
        raise EditFlowError(as_flags(str(err))) from None
    for index, output in enumerate(outputs):
        if index > 0:
            print()
        print(output["generated_text"])
    if "infill" in outputs[0]:
        meaning = "each mask became one token" if outputs[0]["infill"] == "fixed" else "the masked spans could grow or shrink"
        print(f"infill: {outputs[0]['infill']} ({meaning}; --infill fixed|free)", file=sys.stderr)
    if args.show_trace:
        from ..visualize import trace_to_ansi

        trace = trace_to_ansi(outputs[0]["trace"], generator.tokenizer, outputs[0]["generated_text"])
        if not colour_wanted(sys.stderr):  # a pipe or a file: the trace without colour codes
            trace = ANSI_CODE.sub("", trace)
        print(trace, file=sys.stderr)
    if args.make_gif:
        from ..visualize import make_gif

        frames = make_gif(outputs[0]["trace"], generator.tokenizer, args.gif_path, final_text=outputs[0]["generated_text"])
        print(f"decode trace ({frames} frames) written to {args.gif_path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = build_parser(description=__doc__)
    add_sample_arguments(parser)
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

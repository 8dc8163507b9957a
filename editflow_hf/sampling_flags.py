"""The sampling flags of the command line, shared by editflow-sample and editflow-chat (`build_parser`,
`check_common_args`, `sampling_kwargs`), and the pipeline of a checkpoint they sample from (`load_pipeline`)."""

import argparse
import logging
import os
import re

from .checkpoints.gate import check_model_folder, loading_errors
from .checkpoints.hub_ids import is_hub_id
from .errors import EditFlowError
from .flags import add_bool_flag, str_to_bool
from .modeling.edits_editflow import EDIT_RULES, INFILL_MODES, WRITE_ORDERS  # the standard library only, no torch

# transformers (and torch) are imported where they are used, so that `--help` starts fast.


def refuse_dllm_sampling_flags(args) -> None:
    """dLLM sampler options that have no counterpart here: refused with what to do instead."""
    if args.time_epsilon is not None:
        raise EditFlowError("--time_epsilon is not needed: tau-leaping here steps to t = 1 exactly (the last step's rate "
                            "stays finite); drop it and set the step with --tau.")  # fmt: skip
    if not args.time_independent:
        raise EditFlowError("--time_independent False is not supported: the model predicts rates per unit of the "
                            "scheduler weight w(t), the same network at every t.")  # fmt: skip


def build_parser(prog: str = "editflow-sample", description: str | None = None) -> argparse.ArgumentParser:
    """The flags editflow-sample and editflow-chat share: the checkpoint, the sampling parameters, dLLM's options."""
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
    parser.add_argument("--infill", choices=INFILL_MODES, default=None, help="What a [MASK] in the prompt becomes: free = a span the model may grow or shrink, fixed = exactly one token (default: the checkpoint's generation config).")
    parser.add_argument("--guidance_scale", type=time_schedule_flag, default=None, help="Classifier-free guidance w (the paper's naive rate CFG; 0 = off; a model trained with --prefix_conditioning): a number, 'a,b' (w at t=0 and t=1) or a formula in t such as '0.5*(1-t)' (default: the checkpoint's generation config).")
    parser.add_argument("--temperature_schedule", type=time_schedule_flag, default=None, help="Token temperature as a function of t: 'a,b' (at t=0 and t=1) or a formula such as '0.8*t + 1.0*(1-t)' (default: --temperature throughout).")
    add_bool_flag(parser, "--edit_prompt", help="Let the model edit the prompt too.")
    parser.add_argument("--strength", type=float, default=None, help="How much of the path to run, in (0, 1] (diffusers' img2img strength): the text starts at t = 1 - strength; below 1 for --edit_prompt on a text that is mostly right (default: the checkpoint's generation config).")
    parser.add_argument("--edit_rule", choices=EDIT_RULES, default=None, help="When an edit fires: sample (tau-leaping), threshold (where the model finds an edit more likely than not) or gain (revising: where an edit, its token included, is more likely right than needless) (default: the checkpoint's generation config).")
    parser.add_argument("--write_order", choices=WRITE_ORDERS, default=None, help="parallel (every drawn edit fires) or frontier (a write whose token head would read a mask waits for that mask to be written: no repeated words from a converted decoder's shifted head) (default: the checkpoint's generation config, else frontier for a shifted head).")
    parser.add_argument("--no_repeat_adjacent", type=str_to_bool, nargs="?", const=True, default=None, metavar="{True,False}", help="A written token never equals a token beside it (default: the checkpoint's generation config, else on for a converted decoder's shifted head).")
    parser.add_argument("--gain_margin", type=float, default=None, help="With --edit_rule gain: the expected gain (in edits, in [0, 1)) an edit must exceed to fire; a margin guards against a model more confident than right (default: the checkpoint's generation config).")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    add_bool_flag(parser, "--no_progress", help="Hide the progress bar.")
    add_bool_flag(parser, "--compile", help="Run the encoder under torch.compile at bucketed widths (CUDA graphs on GPU): "
                  "faster steps after a one-off compilation of seconds to minutes per width bucket.")  # fmt: skip
    parser.add_argument("--time_epsilon", type=float, default=None, help="dLLM's sampler option; refused (not needed here).")
    parser.add_argument("--time_independent", type=str_to_bool, default=True, help="dLLM's sampler option; only True.")
    return parser


def time_schedule_flag(value: str) -> "float | list[float] | str":
    """A setting that may change with t, as the generation config takes it: a number, 'a,b' (its values at t = 0
    and t = 1) or a formula in t (checked by the generation config)."""
    parts = [part.strip() for part in value.split(",")]
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return value
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) == 2:
        return numbers
    raise argparse.ArgumentTypeError(f"expected a number, 'a,b' or a formula in t; got {value!r}")


def parse_chat_template(value: str) -> bool | None:
    """--chat_template: auto -> None (the checkpoint decides), True/on -> True, False/off -> False (dLLM spells
    it True/False)."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        return str_to_bool(value.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, True or False (or on/off), got {value!r}") from None


def as_flags(message: str) -> str:
    """A generation-config message with its `setting` names spelled as command-line flags (`--setting`)."""
    return re.sub(r"`(\w+)`", r"`--\1`", message)


def check_common_args(args) -> None:
    """Reject bad values before loading the model, with the checks of the generation config (the flags given; the
    checkpoint's generation config fills the rest and the pipeline checks the merged values against the model)."""
    refuse_dllm_sampling_flags(args)
    from .modeling.generation_editflow import MAX_BATCH_SIZE, EditFlowGenerationConfig, check_size, check_text

    try:
        EditFlowGenerationConfig(**sampling_kwargs(args))
        for name in ("num_samples", "batch_size"):
            if hasattr(args, name):
                check_size(name, getattr(args, name), 1, MAX_BATCH_SIZE)
        if getattr(args, "prompt", None):
            check_text(args.prompt, "--prompt")  # a lone surrogate: an undecodable byte of the command line
    except ValueError as err:
        raise EditFlowError(as_flags(str(err))) from None
    path = args.model_name_or_path
    if not os.path.exists(os.path.expanduser(path)) and not is_hub_id(path):
        raise EditFlowError(f"model folder {path!r} does not exist; pass the folder of an Edit Flow checkpoint.")


def load_pipeline(model_name_or_path: str, device: str | None = None):
    """The editflow-generation pipeline for a checkpoint, with this package's classes (no remote code needed)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .modeling.pipeline_editflow import EditFlowGenerationPipeline
    from .registration import register

    register()

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
        infill=args.infill, seed=args.seed, compile=args.compile or None, guidance_scale=args.guidance_scale,
        temperature_schedule=args.temperature_schedule, strength=args.strength, edit_rule=args.edit_rule,
        gain_margin=args.gain_margin, write_order=args.write_order, no_repeat_adjacent=args.no_repeat_adjacent,
    )  # fmt: skip
    return {key: value for key, value in values.items() if value is not None}

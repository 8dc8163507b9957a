"""Chat with an Edit Flow checkpoint in the terminal.

    editflow-chat --model_name_or_path .models/editflow/ModernBERT-large/alpaca/checkpoint-final --tau 0.01

Reads one message per line from stdin until EOF or "exit" / "quit". In chat mode (default) each line is a user
message formatted with the checkpoint's chat template, and the conversation so far is kept (`--no_history` to
send each message alone; "/reset" clears it). With `--plain` each line is a raw text prompt.
"""

import sys

from ..errors import EditFlowError, run_cli
from .sample import add_bool_flag, build_parser, check_common_args, check_text, load_pipeline, quiet_transformers, str_to_bool

EXIT_WORDS = {"exit", "quit"}


def run(args, stdin=None, stdout=None) -> int:
    if stdin is None:
        stdin = sys.stdin
        # An undecodable byte arrives as a lone surrogate (reported for its line) instead of ending the session.
        if hasattr(stdin, "reconfigure"):
            stdin.reconfigure(errors="surrogateescape")
    stdout = stdout if stdout is not None else sys.stdout
    check_common_args(args)
    quiet_transformers()
    generator = load_pipeline(args.model_name_or_path, args.device)
    interactive = stdin.isatty()
    history: list[dict] = []
    turn = 0
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line:
            break
        message = line.strip()
        if message.lower() in EXIT_WORDS:
            break
        if not message:
            continue
        if message == "/reset":
            history = []
            continue
        try:
            check_text(message, "that line")
        except EditFlowError as err:
            print(f"editflow-chat: {err}", file=sys.stderr)
            continue
        if args.plain:
            prompt = message
        else:
            prompt = [*history, {"role": "user", "content": message}]
        try:
            output = generator(
                prompt,
                tau=args.tau,
                mask_length=args.mask_length,
                seed=None if args.seed is None else args.seed + turn,
                temperature=args.temperature,
                top_p=args.top_p,
                edit_prompt=args.edit_prompt,
                max_length=args.max_length,
                progress_bar=interactive and not args.no_progress,
            )
        except ValueError as err:
            # e.g. the conversation outgrew max_length: report it, start over, keep the session alive
            print(f"editflow-chat: {' '.join(str(err).split())} (history cleared)", file=sys.stderr)
            history = []
            continue
        reply = output["generated_text"]
        print(reply, file=stdout, flush=True)
        turn += 1
        if not args.plain and not args.no_history:
            history = [*prompt, {"role": "assistant", "content": reply}]
    return 0


def main(argv=None) -> int:
    parser = build_parser(prog="editflow-chat", description=__doc__)
    add_bool_flag(parser, "--plain", help="Treat each line as a raw text prompt (no chat template).")
    parser.add_argument(
        "--chat_template", type=str_to_bool, default=True, help="dLLM's spelling: --chat_template False is --plain."
    )
    add_bool_flag(parser, "--no_history", help="Send each message without the earlier turns.")
    parser.add_argument("--visualize", type=str_to_bool, default=False, help="dLLM's option; refused (replies only).")
    args = parser.parse_args(argv)
    args.plain = args.plain or not args.chat_template
    if args.visualize:
        print(
            "editflow-chat: error: --visualize is not supported in the chat (it prints replies); watch a decode with "
            "editflow-sample --show_trace or --make_gif.",
            file=sys.stderr,
        )
        return 2
    try:
        return run_cli(parser.prog, lambda: run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chat with an Edit Flow checkpoint in the terminal.

    editflow-chat --model_name_or_path .models/editflow/ModernBERT-large/alpaca/checkpoint-final --tau 0.01

Reads one message per line from stdin until EOF or "exit" / "quit" (or "/exit" / "/quit"). The prompt rule of editflow-sample and the
pipeline decides the mode: for a checkpoint fine-tuned on chats (`chat_template: true` in its generation_config.json)
or with `--chat_template True`, each line is a user message formatted with the chat template and the conversation
so far is kept (`--no_history` to send each message alone; "/reset" clears it); for a pretrained or freshly
converted checkpoint, with `--chat_template False` or `--plain`, each line is a raw text prompt.
"""

import sys

from ..errors import EditFlowError, run_cli
from ..flags import add_bool_flag, check_device, str_to_bool
from ..sampling_flags import as_flags, build_parser, check_common_args, load_pipeline, quiet_transformers, sampling_kwargs

EXIT_WORDS = {"exit", "quit", "/exit", "/quit"}  # commands, as "/reset" is: never sent as a message


def run(args, stdin=None, stdout=None) -> int:
    if stdin is None:
        stdin = sys.stdin
        # An undecodable byte arrives as a lone surrogate (reported for its line) instead of ending the session.
        if hasattr(stdin, "reconfigure"):
            stdin.reconfigure(errors="surrogateescape")
    stdout = stdout if stdout is not None else sys.stdout
    check_common_args(args)
    check_device(args.device)
    quiet_transformers()
    generator = load_pipeline(args.model_name_or_path, args.device)
    from ..modeling.generation_editflow import check_text  # after load_pipeline: --help imports no torch

    chat_mode = not args.plain and (
        generator.generation_config.chat_template if args.chat_template is None else args.chat_template
    )
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
        except ValueError as err:
            print(f"editflow-chat: {err}", file=sys.stderr)
            continue
        prompt = [*history, {"role": "user", "content": message}] if chat_mode else message
        try:
            output = generator(
                prompt,
                # one seed per turn: the same seed replays the same conversation
                **{**sampling_kwargs(args), "chat_template": chat_mode, "seed": None if args.seed is None else args.seed + turn},
                edit_prompt=args.edit_prompt,
                progress_bar=interactive and not args.no_progress,
            )
        except ValueError as err:
            # e.g. the conversation outgrew max_length: report it, start over, keep the session alive
            print(f"editflow-chat: {as_flags(' '.join(str(err).split()))} (history cleared)", file=sys.stderr)
            history = []
            continue
        reply = output[0]["generated_text"]
        print(reply, file=stdout, flush=True)
        turn += 1
        if chat_mode and not args.no_history:
            history = [*prompt, {"role": "assistant", "content": reply}]
    return 0


def main(argv=None) -> int:
    parser = build_parser(prog="editflow-chat", description=__doc__)
    add_bool_flag(parser, "--plain", help="Treat each line as a raw text prompt (= --chat_template False).")
    add_bool_flag(parser, "--no_history", help="Send each message without the earlier turns.")
    parser.add_argument("--visualize", type=str_to_bool, default=False, help="dLLM's option; refused (replies only).")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.visualize:
            raise EditFlowError("--visualize is not supported in the chat (it prints replies); watch a decode with "
                                "editflow-sample --show_trace or --make_gif.")  # fmt: skip
        return run(args)

    try:
        return run_cli(parser.prog, body)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

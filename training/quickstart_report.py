"""The quickstart's views of its run (training/quickstart.sh calls it):

    python training/quickstart_report.py estimate --model DIR --data FILE --steps 300 --batch 16 --masks 32 [--judge]
    python training/quickstart_report.py plot CHECKPOINT/trainer_state.json loss_curve.png

`estimate` times a few training steps and sampling steps of the converted model on this machine, now, and prints
how long the run will take; `plot` draws the logged training loss as a PNG (editflow_hf.training.progress).
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    estimate = commands.add_parser("estimate", help="measure this machine and print the run's time estimate")
    estimate.add_argument("--model", required=True)
    estimate.add_argument("--data", required=True)
    estimate.add_argument("--steps", type=int, required=True)
    estimate.add_argument("--batch", type=int, required=True)
    estimate.add_argument("--masks", type=int, required=True)
    estimate.add_argument("--max_length", type=int, default=64)
    estimate.add_argument("--lr", type=float, default=3e-4)
    estimate.add_argument("--tau", type=float, default=0.02)
    estimate.add_argument("--judge", action="store_true", help="the run ends with the judged figure")
    plot = commands.add_parser("plot", help="draw trainer_state.json's logged loss as a PNG")
    plot.add_argument("trainer_state")
    plot.add_argument("png")
    args = parser.parse_args(argv)

    from editflow_hf.training import progress

    if args.command == "plot":
        try:
            png = progress.plot_loss_curve(args.trainer_state, args.png)
        except (OSError, ValueError) as error:
            print(f"quickstart: no loss curve: {error}", file=sys.stderr)
            return 1
        print(f"quickstart: loss curve in {png}")
        return 0

    speed = progress.measure_speed(args.model, args.data, batch_size=args.batch, max_length=args.max_length,
                                   x0_sampler=f"masks[length:{args.masks}]", learning_rate=args.lr, started=STARTED)  # fmt: skip
    from editflow_hf.causal_lm import smollm2_gguf

    judge = args.judge and smollm2_gguf() is not None  # the quickstart judges only when SmolLM2 is installed
    for line in progress.estimate_lines(speed, steps=args.steps, sample_steps=round(1 / args.tau), judge=judge):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

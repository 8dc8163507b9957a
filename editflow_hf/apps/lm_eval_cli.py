"""editflow-lm-eval: lm-eval's command line with the `editflow` model registered.

    editflow-lm-eval --model editflow --model_args pretrained=CKPT --tasks arc_easy

A module of its own, outside `editflow_hf.lm_eval` (whose import loads torch, the model and lm-eval's models to
register the name): `--help` is lm-eval's own help and loads none of them.
"""

import sys


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    if not any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        import editflow_hf.lm_eval  # noqa: F401  (registers the model name "editflow")

    cli_evaluate()


if __name__ == "__main__":
    sys.exit(main())

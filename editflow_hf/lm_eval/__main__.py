"""lm-eval's command line with the `editflow` model registered:

    python -m editflow_hf.lm_eval --model editflow --model_args pretrained=CKPT --tasks arc_easy
    editflow-lm-eval --model editflow --model_args pretrained=CKPT --tasks arc_easy
"""

import sys


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    import editflow_hf.lm_eval  # noqa: F401  (registers the model name "editflow")

    cli_evaluate()


if __name__ == "__main__":
    sys.exit(main())

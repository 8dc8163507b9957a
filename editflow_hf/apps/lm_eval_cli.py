"""editflow-lm-eval: lm-eval's command line with the `editflow` model registered.

    editflow-lm-eval --model editflow --model_args pretrained=CKPT --tasks arc_easy

A module of its own, outside `editflow_hf.lm_eval` (whose import loads torch, the model and lm-eval's models to
register the name). `editflow-lm-eval --help` prints the help below without importing lm-eval at all: lm-eval's
own import (requests, numpy, its task machinery) took 0.4x a transformers import, four times the budget of every
other `--help`. Every other help (`editflow-lm-eval run --help`, `ls --help`) is lm-eval's own.
"""

import sys

# What this command adds to lm-eval, then where lm-eval's own flags are listed. The model arguments are those of
# `editflow_hf.lm_eval.EditFlowLM.__init__` (a test keeps the two lists equal).
HELP = """\
usage: editflow-lm-eval [-h] [COMMAND] [lm-eval flags ...]

lm-evaluation-harness's command line (`lm-eval`) with the Edit Flow model registered as `editflow`.

  editflow-lm-eval --model editflow --model_args pretrained=CKPT --tasks arc_easy --batch_size 32
  editflow-lm-eval run --model editflow --model_args pretrained=CKPT,num_t=32 --include_path my_tasks --tasks my_task

commands (lm-eval's; with none, `run` is meant):
  run       evaluate a model on tasks       (editflow-lm-eval run --help lists every flag)
  ls        list tasks, groups, subtasks or tags
  validate  check task configurations

--model_args for --model editflow (key=value,...):
  pretrained         checkpoint folder or Hub id (required)
  device             cuda, cpu, ... (default: cuda when available, else the CPU)
  batch_size         sequences per forward pass of the bound, inputs per sampling run (default 32)
  max_batch_size     accepted for lm-eval's `auto` batch sizes; the batch is batch_size
  num_t              grid points of the Edit Flow bound that scores loglikelihood (default 16)
  seed               draws of the bound and of sampling (default 0)
  x0_sampler         coupling of the bound (default: the checkpoint's when it is masks only, else masks)
  append_eos         score the continuation as the end of the sequence (default: true for a chat model)
  tau                sampling step for generate_until (default: the checkpoint's)
  mask_length        masks to generate into (default: the checkpoint's)
  check_greedy       compute is_greedy with a whole decode per context (default false)
  trust_remote_code  accepted for symmetry with lm-eval's hf model (the model class is ours)
  dtype              float32, bfloat16 or float16 (default float32)

How each request type is answered: editflow_hf/lm_eval/__init__.py, and docs/evaluation.md (lm-evaluation-harness).
"""


def main() -> None:
    if sys.argv[1:] in (["-h"], ["--help"]):
        sys.stdout.write(HELP)
        return
    from lm_eval.__main__ import cli_evaluate

    import editflow_hf.lm_eval  # noqa: F401  (registers the model name "editflow")

    cli_evaluate()


if __name__ == "__main__":
    sys.exit(main())

"""`training/pt.py` that also writes each rank's weights after training, to <DUMP_DIR>/rank<k>.safetensors (the
Trainer saves rank 0's only). For tests/test_multiprocess.py, run under torchrun."""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from editflow_hf.training.cli import train_from_cli
from editflow_hf.training.trainer import EditFlowTrainer

_train = EditFlowTrainer.train


def _train_and_dump(self, *args, **kwargs):
    result = _train(self, *args, **kwargs)
    weights = {name: tensor.detach().clone().contiguous() for name, tensor in self.model.state_dict().items()}
    save_file(weights, str(Path(os.environ["DUMP_DIR"]) / f"rank{self.args.process_index}.safetensors"))
    return result


if __name__ == "__main__":
    EditFlowTrainer.train = _train_and_dump
    sys.exit(train_from_cli("pt"))

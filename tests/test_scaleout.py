"""The accelerate configs (ddp/zero2/fsdp.yaml) build accelerate's plugins with the values the README promises, the
way `accelerate launch` does; checkpoint-final stays a complete standalone folder under FSDP and DeepSpeed."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
from torch.distributed.fsdp import StateDictType

from conftest import REPO_ROOT
from editflow_hf.errors import EditFlowError
from editflow_hf.training.checkpoint_io import check_final_save_possible, save_final_checkpoint
from editflow_hf.training.checkpoint_io import _gather_full_state_dict_for_saving

CONFIGS = REPO_ROOT / "training" / "accelerate_configs"


def launch_env(name: str) -> tuple[SimpleNamespace, dict]:
    """The launch arguments and the environment `accelerate launch --config_file <name> --num_processes 1` gives
    the training processes (accelerate's own functions; the plugins are built from this environment)."""
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / name), "--num_processes", "1", "training/pt.py"])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_precision_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, env


def test_ddp_yaml(monkeypatch):
    args, env = launch_env("ddp.yaml")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_zero2_yaml_builds_a_zero_stage_2_plugin(monkeypatch):
    args, env = launch_env("zero2.yaml")
    assert args.use_deepspeed and env["ACCELERATE_USE_DEEPSPEED"] == "true"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == 2
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_yaml_builds_a_full_shard_fsdp2_plugin(monkeypatch):
    args, env = launch_env("fsdp.yaml")
    assert args.use_fsdp
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT  # what a loadable checkpoint-final needs
    assert plugin.min_num_params == 10_000_000 and plugin.auto_wrap_policy.__name__ == "size_based_auto_wrap_policy"
    assert plugin.cpu_ram_efficient_loading is True and plugin.activation_checkpointing is False
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_a_sharded_fsdp_state_dict_is_gathered_for_the_final_save():
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, state_dict_type="SHARDED_STATE_DICT")
    trainer = SimpleNamespace(is_fsdp_enabled=True, accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)))
    _gather_full_state_dict_for_saving(trainer)
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT


@pytest.mark.parametrize("gather", [False, True])
def test_zero3_needs_gathered_weights_for_a_loadable_checkpoint(gather):
    plugin = DeepSpeedPlugin(zero_stage=3, zero3_save_16bit_model=gather)
    trainer = SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)))
    if gather:
        check_final_save_possible(trainer)
    else:
        with pytest.raises(EditFlowError, match="zero3_save_16bit_model: true"):
            check_final_save_possible(trainer)
    check_final_save_possible(SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=DeepSpeedPlugin(zero_stage=2)))))


def test_an_incomplete_final_save_is_reported(tmp_path):
    def save_weights_only(output_dir):
        Path(output_dir).mkdir(parents=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"")

    trainer = SimpleNamespace(is_fsdp_enabled=False, save_model=save_weights_only, is_world_process_zero=lambda: True,
                              accelerator=SimpleNamespace(state=SimpleNamespace()))  # fmt: skip
    with pytest.raises(EditFlowError, match="config.json"):
        save_final_checkpoint(trainer, tmp_path / "checkpoint-final", "unused", SimpleNamespace(lora=False))

"""The accelerate configs (cpu, ddp, zero1/2/3, fsdp, fsdp2.yaml: dLLM's set) build accelerate's plugins with the values the README promises, the
way `accelerate launch` does; checkpoint-final stays a complete standalone folder under FSDP and DeepSpeed."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env, prepare_simple_launcher_cmd_env
import yaml
from torch.distributed.fsdp import BackwardPrefetch, ShardingStrategy, StateDictType

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
    elif args.multi_gpu or args.use_fsdp:
        env = prepare_multi_gpu_env(args)
    else:
        _, env = prepare_simple_launcher_cmd_env(args)
    return args, env


def test_every_dllm_config_is_shipped_for_one_machine():
    names = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
    assert names == ["cpu", "ddp", "fsdp", "fsdp2", "zero1", "zero2", "zero3"]
    for name in names:
        # One machine by default: the launcher (or training/train.slurm.sh) passes --num_machines and --machine_rank.
        raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        assert raw["num_machines"] == 1 and raw["machine_rank"] == 0


def test_cpu_yaml_runs_one_plain_cpu_process():
    args, env = launch_env("cpu.yaml")
    assert not (args.multi_gpu or args.use_fsdp or args.use_deepspeed) and args.num_processes == 1
    assert env["ACCELERATE_USE_CPU"] == "True" and env["ACCELERATE_MIXED_PRECISION"] == "no"


def test_ddp_yaml(monkeypatch):
    args, env = launch_env("ddp.yaml")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_yaml_builds_its_zero_stage_plugin(stage, monkeypatch):
    args, env = launch_env(f"zero{stage}.yaml")
    assert args.use_deepspeed and env["ACCELERATE_USE_DEEPSPEED"] == "true"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == stage
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == stage and zero["offload_optimizer"]["device"] == "none" and zero["offload_param"]["device"] == "none"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    if stage == 3:
        # Full weights gathered at save (checkpoint-final loads anywhere); parameters sharded at load.
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True and plugin.zero3_init_flag is True
        trainer = SimpleNamespace(accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)))
        check_final_save_possible(trainer)


def test_fsdp2_yaml_builds_a_full_shard_fsdp2_plugin(monkeypatch):
    args, env = launch_env("fsdp2.yaml")
    assert args.use_fsdp
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT  # what a loadable checkpoint-final needs
    assert plugin.min_num_params == 10_000_000 and plugin.auto_wrap_policy.__name__ == "size_based_auto_wrap_policy"
    assert plugin.cpu_ram_efficient_loading is True and plugin.activation_checkpointing is False
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_yaml_builds_dllms_fsdp1_full_shard_plugin(monkeypatch):
    args, env = launch_env("fsdp.yaml")
    assert args.use_fsdp
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # sync_module_states asks accelerate for the accelerator device; this machine may have none (accelerate < 1.16
    # asks is_cuda_available, 1.16 get_torch_accelerator_backend: each patched where it exists)
    monkeypatch.setattr("accelerate.utils.dataclasses.is_cuda_available", lambda: True, raising=False)
    monkeypatch.setattr(
        "accelerate.utils.dataclasses.get_torch_accelerator_backend", lambda: ("cuda", None), raising=False
    )
    monkeypatch.setattr("torch.cuda.current_device", lambda: 0)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 1 and plugin.sharding_strategy == ShardingStrategy.FULL_SHARD
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    assert plugin.use_orig_params is True and plugin.sync_module_states is True and plugin.cpu_ram_efficient_loading is True
    assert plugin.backward_prefetch == BackwardPrefetch.BACKWARD_PRE and plugin.forward_prefetch is True
    assert plugin.min_num_params == 10_000_000 and plugin.auto_wrap_policy.__name__ == "size_based_auto_wrap_policy"
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

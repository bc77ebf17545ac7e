# Tensor parallelism (issue 15 item 4): the split of a Qwen3 layer over ranks on the host
# (CPU), and the CUDA backend with N ranks against one (gpu: loopback ranks on one device,
# NCCL across devices when there are several).
ga_add_test(test_tp_shard SOURCES test_tp_shard.c)
ga_add_script_test(test_tp_cli test_tp_cli.sh)
if(GA_HAVE_CUDA)
  ga_add_test(test_tp_gpu SOURCES test_tp_gpu.c LABELS gpu)
endif()

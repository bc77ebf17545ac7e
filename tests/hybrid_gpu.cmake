# The hybrid CUDA backend (src/cuda/cuda_hybrid*.c, issue 15) against the hybrid CPU backend on
# small random Qwen3.5 dense, Qwen3-Next and Qwen3.5-MoE folders: prefill logits of every
# position, prefill + batched decode (slot and paged caches), greedy decode vs recompute.
# Built in every build (exit 77 without a GPU, or in a build without CUDA).
ga_add_test(test_hybrid_gpu SOURCES test_hybrid_gpu.c LABELS "gpu;slow")

# The hybrid backend's own kernels (kernels/hybrid_attn.cu, kernels/moe.cu) against references
# that share no code with them (test_hybrid_ops.c): one ctest entry a section, gpu label, exit 77
# without a GPU. Built only with the CUDA backend (it calls the launchers directly).
if(GA_HAVE_CUDA)
  ga_add_test(test_hybrid_ops SOURCES test_hybrid_ops.c ARGS prep LABELS gpu)
  target_include_directories(test_hybrid_ops PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  foreach(sec route moe)
    add_test(NAME test_hybrid_ops_${sec} COMMAND test_hybrid_ops ${sec})
    set_tests_properties(test_hybrid_ops_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu)
  endforeach()
endif()

# The grouped expert product of the hybrid backend's decode steps (ga_moe_expert_gemm,
# kernels/moe.cu) against a double reference, with empty experts, both load paths and the
# batch invariance of a row, and its FP8 form bitwise against it on dequantised weights
# (test_hybrid_moe_gemm.c). gpu label, exit 77 without a GPU.
if(GA_HAVE_CUDA)
  ga_add_test(test_hybrid_moe_gemm SOURCES test_hybrid_moe_gemm.c LABELS gpu)
  target_include_directories(test_hybrid_moe_gemm PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
endif()

# FP8 hybrid folders with the weights kept as FP8 on the device against the same folders
# dequantised to bf16 at upload: bitwise equal prefill and decode logits, the device layout
# (test_hybrid_fp8_gpu.c). gpu label, exit 77 without a GPU; it reads the backend's internals.
if(GA_HAVE_CUDA)
  ga_add_test(test_hybrid_fp8_gpu SOURCES test_hybrid_fp8_gpu.c LABELS gpu)
  target_include_directories(test_hybrid_fp8_gpu PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
endif()

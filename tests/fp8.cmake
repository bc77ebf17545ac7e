# FP8 checkpoints (issue 15 item 4): e4m3, block-scale binding, quantization_config, and
# FP8 folders against their dequantised f32 twins on each backend.
ga_add_test(test_fp8 SOURCES test_fp8.c)
ga_add_script_test(test_fp8_cli test_fp8_cli.sh)
ga_add_script_test(test_fp8_gpu test_fp8_cli.sh ARGS cuda LABELS gpu)
ga_add_test(test_fuzz_model_fp8 SOURCES test_fuzz_model.c ARGS fp8)
# The FP8 weight kernels (FP8 kept as FP8 on the GPU) against the bf16 path, bitwise.
if(GA_HAVE_CUDA)
  ga_add_test(test_fp8_gemv SOURCES test_fp8_gemv.c LABELS gpu)
  target_include_directories(test_fp8_gemv PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
endif()

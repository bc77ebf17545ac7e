# Generation, sampling and the bench command (src/engine, cmd_generate.c, cmd_bench.c).
ga_add_test(test_gen SOURCES test_gen.c)
ga_add_test(test_gen_sampler SOURCES test_gen_sampler.c)
ga_add_script_test(test_gen_cli test_gen_cli.sh)
ga_add_script_test(test_gen_seed test_gen_seed.sh)
ga_add_test(test_gen_gpu SOURCES test_gen_gpu.c LABELS gpu)
if(GA_HAVE_CUDA)
  # Calls the device sampling launcher directly (kernels/kernels.h).
  ga_add_test(test_sampling_kernel SOURCES test_sampling_kernel.c LABELS gpu)
  target_include_directories(test_sampling_kernel PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  # CUDA failure paths, options and gate precision; wraps CUDA runtime calls (test-only).
  ga_add_test(test_gen_cuda SOURCES test_gen_cuda.c LABELS gpu)
  target_include_directories(test_gen_cuda PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  target_link_options(test_gen_cuda PRIVATE
    "LINKER:--wrap=cudaMalloc,--wrap=cudaDeviceGetAttribute,--wrap=cudaGetDeviceProperties")
endif()
# The layering of src/ (README "Layout"): an upward #include fails here.
ga_add_script_test(test_layers test_layers.sh LABELS lint)
# Injected allocation failures: the test wraps calloc/realloc/free at link time (test-only).
ga_add_test(test_gen_faults SOURCES test_gen_faults.c)
target_link_options(test_gen_faults PRIVATE "LINKER:--wrap=calloc,--wrap=realloc,--wrap=free")

# Attention kernel benchmark (bench_attention): our prefill/decode kernels with and without
# the fused gate; PyTorch SDPA on the same shapes is tools/bench_attention_torch.py.
if(GA_HAVE_CUDA)
  # bench_ceiling.cu: a plain read of the decode case's bytes, the ceiling in the same run
  add_executable(bench_attention bench_attention.c bench_ceiling.cu)
  target_include_directories(bench_attention PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  target_compile_options(bench_attention PRIVATE $<$<COMPILE_LANGUAGE:C>:${GA_C_WARN}>
    $<$<COMPILE_LANGUAGE:CUDA>:${GATTN_CUDA_GENCODE} -O3 -Werror=all-warnings>)
  target_link_libraries(bench_attention PRIVATE libgattn)
  set_target_properties(bench_attention PROPERTIES LINKER_LANGUAGE CUDA)
endif()

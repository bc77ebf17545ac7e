# The prefill chunk setting (ga_session_opts.prefill_chunk, --prefill-chunk; issue 12).
# test_prefill_chunk: section cpu (the session's check of the option) in every build; section
# gpu (label gpu, exit 77 without a GPU) prefills one prompt in passes of 64, 300, 512 and
# 2048 rows and compares logits and the KV cache (bitwise in deterministic mode).
# test_prefill_chunk_cli: the option on every command that takes it (CPU).
ga_add_test(test_prefill_chunk SOURCES test_prefill_chunk.c ARGS cpu)
if(GA_HAVE_CUDA)
  target_include_directories(test_prefill_chunk PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  add_test(NAME test_prefill_chunk_gpu COMMAND test_prefill_chunk gpu)
  set_tests_properties(test_prefill_chunk_gpu PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;slow")
endif()
ga_add_script_test(test_prefill_chunk_cli test_prefill_chunk_cli.sh)

# ga_session_forward_multi and the paged KV cache through whole sessions
# (test_multi_paged.c): section cpu in every build (the session's fallback and error paths on
# the CPU backend); section gpu (label gpu, exit 77 without a GPU): CUDA paged == CUDA slots
# bitwise, vs the CPU's paged, CUDA forward_multi vs separate forwards and the CPU, greedy
# decode_sample paged == slots, out of blocks, paged_init refusals.
ga_add_test(test_multi_paged SOURCES test_multi_paged.c ARGS cpu)
if(GA_HAVE_CUDA)
  add_test(NAME test_multi_paged_gpu COMMAND test_multi_paged gpu)
  set_tests_properties(test_multi_paged_gpu PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;slow")
endif()

# Batch-invariant ("deterministic") decoding, issue 13. test_sched_recompute: a preempted
# request is recomputed by prefilling its prompt and replaying its sent tokens through decode
# steps (CPU). test_determ: a sequence's logits alone == in batches of 3/8/17 beside others,
# prompt whole == in shared chunks; section cpu in every build, section gpu (label gpu, exit 77
# without a GPU) on the CUDA backend at head_dim 64 and 128, slots and paged.
ga_add_test(test_sched_recompute SOURCES test_sched_recompute.c)
ga_add_test(test_determ SOURCES test_determ.c ARGS cpu)
if(GA_HAVE_CUDA)
  add_test(NAME test_determ_gpu COMMAND test_determ gpu)
  set_tests_properties(test_determ_gpu PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu")
endif()
# Mixed steps (ga_session_step_mixed, the scheduler's sched_mixed_step): a step's decode rows
# and prompt tokens in one call give what the two separate calls give (CPU bitwise; CUDA
# bitwise in deterministic mode, bf16 tolerance otherwise; slots and paged), and a scheduler
# with mixed steps gives every request its tokens alone (cpu section).
ga_add_test(test_mixed SOURCES test_mixed.c ARGS cpu)
if(GA_HAVE_CUDA)
  add_test(NAME test_mixed_gpu COMMAND test_mixed gpu)
  set_tests_properties(test_mixed_gpu PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu")
endif()

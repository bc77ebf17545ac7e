# RoPE scaling and perplexity (issue 14).
ga_add_test(test_rope SOURCES test_rope.c)
# against transformers on RoPE-scaled fixtures (skipped until tools/make_fixtures.py made them)
ga_add_test(test_rope_fixtures SOURCES test_rope_fixtures.c)
ga_add_script_test(test_ppl_cli test_ppl_cli.sh LABELS slow)
if(GA_HAVE_CUDA)
  # CUDA RoPE tables with scaling against the CPU backend's (through the logits)
  ga_add_test(test_rope_gpu SOURCES test_rope_gpu.c LABELS "gpu")
endif()
# the perplexity plot's line-plot renderer (src/viz/lineplot.c) on synthetic series
ga_add_test(test_lineplot SOURCES test_lineplot.c)
# --batch: several windows a ga_session_forward_multi call, the numbers of --batch 1 (CPU: bit
# for bit; CUDA: within float rounding of the logits, see the test's header)
ga_add_test(test_ppl_batch SOURCES test_ppl_batch.c ARGS cpu)
if(GA_HAVE_CUDA)
  ga_add_test(test_ppl_batch_gpu SOURCES test_ppl_batch.c ARGS cuda LABELS "gpu")
endif()

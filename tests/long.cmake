# Long context on CUDA against the CPU backend (issue 14, tests/test_long_gpu.c): a small model
# with YaRN x32 over 4096 positions. test_long_gpu: 32k-token prefill + decode vs the CPU, paged
# == slots bitwise at 32k, forward_multi of 4 x 8k vs separate forwards. test_long_gpu_128k: the
# whole usable 131072 positions vs the CPU (its CPU half is about a minute on 16 cores).
# GPU builds only: the CPU suite is unchanged (`test_long_gpu selfcheck` runs the harness on the
# CPU backend at 1/16 of the lengths, by hand).
if(GA_HAVE_CUDA)
  # TIMEOUT: their CPU halves (about 1 min each on 16 cores) outlast tools/gpu_check.sh's
  # --timeout 300 on fewer or slower cores; the property takes precedence over that flag.
  ga_add_test(test_long_gpu SOURCES test_long_gpu.c ARGS 32k paged LABELS "gpu")
  set_tests_properties(test_long_gpu PROPERTIES TIMEOUT 900)
  add_test(NAME test_long_gpu_128k COMMAND test_long_gpu 128k)
  set_tests_properties(test_long_gpu_128k PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;slow"
                       TIMEOUT 1200)
endif()

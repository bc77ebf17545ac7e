# llama.cpp as an independent implementation of the baseline model and the C/C++ peer of
# `gattn bench` (issue 12): skipped unless LCPP_SRC names a llama.cpp source tree (it builds
# llama.cpp on first use, minutes: hence slow).
ga_add_script_test(test_lcpp test_lcpp.sh LABELS "lcpp;slow")
ga_add_script_test(test_lcpp_gpu test_lcpp.sh ARGS cuda LABELS "lcpp;gpu;slow")
# The converter's refusals and bad input: no llama.cpp needed, so in CI.
ga_add_script_test(test_make_gguf test_make_gguf.sh)

# Attention kernel tests (kernels/attention_*.cu): one program, one ctest entry per section.
# `test_attention` (bad arguments) runs without a GPU; the rest are labelled gpu and skip
# (exit 77) without one. compute-sanitizer runs the `quick` section (tools/gpu_attn.sh).
if(GA_HAVE_CUDA)
  ga_add_test(test_attention
    SOURCES test_attention.c test_attention_decode.c test_attention_probs.c test_attention_ref.c
    ARGS args)
  target_include_directories(test_attention PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  foreach(sec prefill prefill_long decode probs probs_long quick)
    add_test(NAME test_attention_${sec} COMMAND test_attention ${sec})
    set(_labels gpu)
    if(sec MATCHES "_long$")
      set(_labels "gpu;slow")
    endif()
    set_tests_properties(test_attention_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS "${_labels}")
  endforeach()
endif()
# The CPU attention op where softmax is numerically hard (scores far past expf's range), against
# a double reference written in the test. No GPU needed.
ga_add_test(test_attention_cpu SOURCES test_attention_cpu.c)

# The Gated DeltaNet CUDA kernels (kernels/gdn.cu) against the hybrid CPU reference ops
# (test_gdn_ops.c). Built only with the CUDA backend. Section `args` (launcher argument checks,
# and the state tolerance's calibration on the CPU op) needs no GPU; the op sections are
# labelled gpu (exit 77 without a GPU), one ctest entry each.
if(GA_HAVE_CUDA)
  ga_add_test(test_gdn_ops SOURCES test_gdn_ops.c ARGS args)
  target_include_directories(test_gdn_ops PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  target_link_options(test_gdn_ops PRIVATE -rdynamic)
  foreach(sec conv delta chunk norm)
    add_test(NAME test_gdn_ops_${sec} COMMAND test_gdn_ops ${sec})
    set_tests_properties(test_gdn_ops_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu)
  endforeach()
endif()

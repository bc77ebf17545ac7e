# CUDA backend tests: the non-attention kernels and the GEMM wrapper (test_cuda_ops), and the
# whole model on the GPU against the CPU backend and the transformers fixtures
# (test_cuda_model). Built only with the CUDA backend; label gpu (exit 77 without a GPU).
# Each program runs in sections, one ctest entry each, so one crash cannot hide the others;
# with no argument a program runs every section (tools/gpu_check.sh uses that under
# compute-sanitizer). -rdynamic gives the crash handler's backtrace symbol names.
if(GA_HAVE_CUDA)
  ga_add_test(test_cuda_ops SOURCES test_cuda_ops.c LABELS gpu ARGS embed)
  target_include_directories(test_cuda_ops PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  target_link_options(test_cuda_ops PRIVATE -rdynamic)
  foreach(sec convert)
    add_test(NAME test_cuda_ops_${sec} COMMAND test_cuda_ops ${sec})
    set_tests_properties(test_cuda_ops_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu)
  endforeach()

  ga_add_test(test_gemv SOURCES test_gemv.c LABELS gpu)
  target_include_directories(test_gemv PRIVATE ${PROJECT_SOURCE_DIR}/kernels)

  ga_add_test(test_cuda_model SOURCES test_cuda_model.c LABELS "gpu;slow" ARGS v0)
  target_link_options(test_cuda_model PRIVATE -rdynamic)
  foreach(sec v1 v2 v3 v4 oom fixtures)
    add_test(NAME test_cuda_model_${sec} COMMAND test_cuda_model ${sec})
    set_tests_properties(test_cuda_model_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;slow"
      ENVIRONMENT "GA_FIXTURES=${GA_FIXTURES}")
  endforeach()
endif()
# The op-level harness (test_backend_ops.c): every CUDA op against the CPU backend's own op
# over a table of shapes. Section `cpu` (the harness's own logic and the decode tolerance's
# calibration) needs no GPU and runs in every build; the op sections are labelled gpu.
ga_add_test(test_backend_ops_cpu SOURCES test_backend_ops.c ARGS cpu)
if(GA_HAVE_CUDA)
  target_include_directories(test_backend_ops_cpu PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  foreach(sec norm qk attn decode paged probs act embed argmax gate gemm fused rows)
    add_test(NAME test_backend_ops_${sec} COMMAND test_backend_ops_cpu ${sec})
    set_tests_properties(test_backend_ops_${sec} PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu)
  endforeach()
endif()

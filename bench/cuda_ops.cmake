# End-to-end CUDA backend benchmark (prefill and decode throughput). Built with the CUDA
# backend only; run by hand or by tools/gpu_check.sh with GA_GPU_BENCH=1.
if(GA_HAVE_CUDA)
  add_executable(bench_cuda_model bench_cuda_model.c ${PROJECT_SOURCE_DIR}/src/cli/presets.c)
  target_include_directories(bench_cuda_model PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(bench_cuda_model PRIVATE ${GA_C_WARN})
  target_link_libraries(bench_cuda_model PRIVATE libgattn)
  set_target_properties(bench_cuda_model PROPERTIES LINKER_LANGUAGE CUDA)
endif()

# One prefill or decode step bracketed for ncu (tools/gpu_profile.sh).
if(GA_HAVE_CUDA)
  add_executable(profile_step profile_step.c ${PROJECT_SOURCE_DIR}/src/cli/presets.c)
  target_include_directories(profile_step PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(profile_step PRIVATE ${GA_C_WARN})
  target_link_libraries(profile_step PRIVATE libgattn)
  set_target_properties(profile_step PROPERTIES LINKER_LANGUAGE CUDA)
endif()

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

# The chunked delta rule's kernels (both versions) run on the CPU under tools/gdn_emu against
# the CPU reference op, with a race check between barrier phases: no GPU or CUDA toolkit needed
# (the .cu files are compiled as C++ with launches rewritten). Left out of sanitizer builds:
# AddressSanitizer does not follow the emulator's ucontext stack switches.
include(CheckLanguage)
check_language(CXX)
if(CMAKE_CXX_COMPILER AND NOT GATTN_SANITIZE)
  enable_language(CXX)
  set(_emu ${PROJECT_SOURCE_DIR}/tools/gdn_emu)
  set(_emu_gen)
  foreach(cu gdn gdn_chunk gdn_chunk_v2)
    set(_out ${CMAKE_CURRENT_BINARY_DIR}/gdn_emu/${cu}.cpp)
    add_custom_command(OUTPUT ${_out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/gdn_emu
      COMMAND bash ${_emu}/launch2emu.sh ${PROJECT_SOURCE_DIR}/kernels/${cu}.cu ${_out}
      DEPENDS ${PROJECT_SOURCE_DIR}/kernels/${cu}.cu ${_emu}/launch2emu.sh VERBATIM)
    list(APPEND _emu_gen ${_out})
  endforeach()
  add_executable(test_gdn_emu ${_emu}/emu.cpp ${_emu}/gdn_emu_test.cpp ${_emu_gen})
  # the emulator's cuda_runtime.h / cuda_bf16.h first, before any real toolkit's
  target_include_directories(test_gdn_emu BEFORE PRIVATE ${_emu}/include ${_emu}
    ${PROJECT_SOURCE_DIR}/kernels ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(test_gdn_emu PRIVATE cxx_std_17)
  target_compile_options(test_gdn_emu PRIVATE -Wall -Wno-unknown-pragmas)
  target_link_libraries(test_gdn_emu PRIVATE libgattn m)
  set_target_properties(test_gdn_emu PROPERTIES LINKER_LANGUAGE CXX)
  add_test(NAME test_gdn_emu COMMAND test_gdn_emu)
endif()

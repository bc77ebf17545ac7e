# Tokenizer throughput (encode MB/s on one core, decode, load time). Run by hand:
#   build/bench/bench_tokenizer [--tokenizer DIR] [--mb N]
add_executable(bench_tokenizer bench_tokenizer.c)
target_compile_options(bench_tokenizer PRIVATE ${GA_C_WARN})
target_include_directories(bench_tokenizer PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_compile_definitions(bench_tokenizer PRIVATE GA_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(bench_tokenizer PRIVATE libgattn)
if(GA_HAVE_CUDA)
  set_target_properties(bench_tokenizer PROPERTIES LINKER_LANGUAGE CUDA)
endif()

# gattn bench (src/cli/cmd_bench.c) reports the commit it was built from: taken here at
# configure time (re-run cmake after committing to refresh it), "unknown" without git.
find_package(Git QUIET)
set(GA_GIT_COMMIT "unknown")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _ga_commit OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _ga_git_rc ERROR_QUIET)
  if(_ga_git_rc EQUAL 0 AND _ga_commit)
    set(GA_GIT_COMMIT "${_ga_commit}")
  endif()
endif()
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/cli/cmd_bench.c
  DIRECTORY ${PROJECT_SOURCE_DIR}
  PROPERTIES COMPILE_DEFINITIONS "GATTN_COMMIT=\"${GA_GIT_COMMIT}\"")

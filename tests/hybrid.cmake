# Hybrid Qwen3-Next / Qwen3.5 / Qwen3.6 models (issue 15): config parsing, gattn info, binding
# errors, the CPU reference forward, sessions and the CLI running them, and the CPU logits against
# transformers' fixtures (tests/fixtures_hybrid; fails while the folder is missing).
ga_add_test(test_hybrid_config SOURCES test_hybrid_config.c)
ga_add_script_test(test_hybrid_cli test_hybrid_cli.sh)
ga_add_test(test_hybrid_forward SOURCES test_hybrid_forward.c)
ga_add_script_test(test_hybrid_run test_hybrid_run.sh)
ga_add_test(test_hybrid_fixtures SOURCES test_hybrid_fixtures.c)
ga_add_test(test_hybrid_session SOURCES test_hybrid_session.c)
ga_add_test(test_hybrid_paged SOURCES test_hybrid_paged.c)
ga_add_test(test_hybrid_viz SOURCES test_hybrid_viz.c)
ga_add_script_test(test_hybrid_serve test_hybrid_serve.sh)
ga_add_test(test_hybrid_presets SOURCES test_hybrid_presets.c ${PROJECT_SOURCE_DIR}/src/cli/presets.c)
ga_add_script_test(test_hybrid_tools test_hybrid_tools.sh)

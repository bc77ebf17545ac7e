# Engine core: config, safetensors, model binding, CPU backend, CLI.
ga_add_test(test_config SOURCES test_config.c)
ga_add_test(test_safetensors SOURCES test_safetensors.c)
ga_add_test(test_fixtures SOURCES test_fixtures.c)
ga_add_test(test_cpu_forward SOURCES test_cpu_forward.c)
ga_add_script_test(test_cli_core test_cli_core.sh)
ga_add_test(test_fuzz_model SOURCES test_fuzz_model.c)
ga_add_script_test(test_format test_format.sh LABELS lint)
ga_add_script_test(test_nonfinite_weights test_nonfinite_weights.sh)

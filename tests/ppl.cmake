# RoPE scaling and perplexity (issue 14).
ga_add_test(test_rope SOURCES test_rope.c)
ga_add_script_test(test_ppl_cli test_ppl_cli.sh LABELS slow)

# RoPE scaling and perplexity (issue 14).
ga_add_test(test_rope SOURCES test_rope.c)

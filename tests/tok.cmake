# Tokenizer tests (src/tok, gattn tokenize/detokenize).
#   tok_unit       synthetic writer, streaming decode, U+FFFD policy, labels, chat template,
#                  invalid UTF-8, added-token flags, malformed tokenizer files
#   tok_bpe        heap BPE + word cache against a naive BPE written in the test
#   tok_cli        the two commands, good and bad input
#   tok_reference  every corpus line against @lenml/tokenizers (node), plus the NFC round trip
#   tok_long_runs  runs of 10k-10M spaces, newlines, ... (issue 10 item 14): reference ids,
#                  extrapolated ids at 10M, round trip
ga_add_test(tok_unit SOURCES tok_unit.c)
ga_add_test(tok_bpe SOURCES tok_bpe.c)
ga_add_script_test(tok_cli tok_cli.sh)
ga_add_script_test(tok_reference tok_reference.sh)
ga_add_script_test(tok_long_runs tok_long_runs.sh LABELS slow)

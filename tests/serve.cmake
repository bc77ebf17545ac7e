# gattn serve (src/server, src/engine/scheduler.c, cmd_serve.c): each test starts its own
# servers on --port 0 with a tiny model and kills them at the end.
ga_add_script_test(serve_http serve_http.sh)
ga_add_script_test(serve_signal serve_signal.sh)
ga_add_script_test(serve_openai serve_openai.sh)
ga_add_script_test(serve_load serve_load.sh LABELS slow) # 1.5 s here, 70 s under ASan
# The request parser on its seed corpus (tests/fuzz/corpus/request), in the normal build.
ga_add_test(serve_request_corpus SOURCES serve_request_corpus.c
            ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/request)
ga_add_script_test(serve_paged serve_paged.sh LABELS slow)
# ignore_eos and tools/bench_serve.py (Poisson + fixed concurrency) against a tiny model
ga_add_script_test(serve_bench serve_bench.sh)
if(GA_HAVE_CUDA)
  # --device cuda end to end with tests/serve_client.py (python3 stdlib: the GPU machine has no
  # node): 32 concurrent requests vs gattn generate, paged + exact and slots + bf16 tolerance
  ga_add_script_test(serve_cuda serve_cuda.sh LABELS "gpu")
endif()
# --prefill-share's budget (ga_sched_prefill_budget), case by case.
ga_add_test(test_sched_budget SOURCES test_sched_budget.c)

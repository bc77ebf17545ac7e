# Visualisation tests (src/viz, gattn viz): rendering, metrics maths and file writers on
# synthetic inputs; the engine's captured maps against an independent naive forward;
# pooling of a long prompt; the CLI's --dump output; CPU-vs-GPU maps; bad arguments.
ga_add_test(test_viz_unit SOURCES test_viz_unit.c)
ga_add_test(test_viz_engine SOURCES test_viz_engine.c viz_naive.c)
ga_add_test(test_viz_gpu SOURCES test_viz_engine.c viz_naive.c ARGS gpu LABELS gpu)
ga_add_test(test_viz_dump SOURCES test_viz_dump.c viz_naive.c)
ga_add_test(test_viz_dump_gpu SOURCES test_viz_dump.c viz_naive.c ARGS gpu LABELS gpu)
ga_add_script_test(test_viz_args test_viz_args.sh)

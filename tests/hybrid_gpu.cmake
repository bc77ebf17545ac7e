# The hybrid CUDA backend (src/cuda/cuda_hybrid*.c, issue 15) against the hybrid CPU backend on
# small random Qwen3.5 dense, Qwen3-Next and Qwen3.5-MoE folders: prefill logits of every
# position, prefill + batched decode (slot and paged caches), greedy decode vs recompute.
# Built in every build (exit 77 without a GPU, or in a build without CUDA).
ga_add_test(test_hybrid_gpu SOURCES test_hybrid_gpu.c LABELS "gpu;slow")

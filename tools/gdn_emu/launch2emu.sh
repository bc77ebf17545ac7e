#!/usr/bin/env bash
# Rewrites a .cu file's kernel launches for the CPU emulator (tools/gdn_emu/include/
# cuda_runtime.h): `k<<<grid, block, smem, stream>>>(` becomes
# `EMU_LAUNCH(k, grid, block, smem, stream)(`. A launch's <<< ... >>>( must sit on one line.
set -euo pipefail
{
  printf '#line 1 "%s"\n' "$1"
  sed -e 's/\([A-Za-z_0-9<>]*\)<<<\(.*\)>>>(/EMU_LAUNCH(\1, \2)(/' "$1"
} >"$2"

/* The CPU emulator's controls (tools/gdn_emu/emu.cpp). */
#ifndef GA_EMU_H
#define GA_EMU_H

#include "cuda_runtime.h"

/* The order threads run in between barriers: 0 by thread index, 1 reversed, 2 a shuffle drawn
 * afresh for every phase from seed. */
void emu_set_order(int mode, unsigned seed);

#endif

/*
 * Crash diagnostics for the CUDA tests: a SIGSEGV/SIGBUS/SIGABRT handler that prints the
 * phase the test was in and a backtrace (symbol names need -rdynamic, set in cuda_ops.cmake),
 * so a crash on the GPU machine says where it happened; and stdout made unbuffered so the
 * lines printed before a crash are not lost in a pipe buffer.
 */
#ifndef GATTN_CUDA_TEST_DIAG_H
#define GATTN_CUDA_TEST_DIAG_H

#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *volatile ga_diag_phase = "start";

static void ga_diag_handler(int sig) {
    static const char head[] = "\n*** crash (signal ";
    char num[16];
    int n = 0, s = sig;
    do
        num[n++] = (char)('0' + s % 10);
    while ((s /= 10) && n < 15);
    (void)!write(2, head, sizeof head - 1);
    while (n)
        (void)!write(2, &num[--n], 1);
    (void)!write(2, ") in phase: ", 12);
    (void)!write(2, (const char *)ga_diag_phase, strlen((const char *)ga_diag_phase));
    (void)!write(2, "\n", 1);
    void *frames[48];
    int k = backtrace(frames, 48);
    backtrace_symbols_fd(frames, k, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void ga_diag_install(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGSEGV, ga_diag_handler);
    signal(SIGBUS, ga_diag_handler);
    signal(SIGABRT, ga_diag_handler);
    signal(SIGFPE, ga_diag_handler);
}

#endif

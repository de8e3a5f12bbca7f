// Linux-PAM headers for Swift. No macros need wrapping today; helpers that
// Swift cannot express go here as `static inline` functions.
#ifndef GATEHOUSE_CPAM_SHIM_H
#define GATEHOUSE_CPAM_SHIM_H

#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

/// PAM frees every reply with free(3), so replies must come from the C heap.
static inline char *gh_pam_strdup(const char *s) { return strdup(s); }

#endif

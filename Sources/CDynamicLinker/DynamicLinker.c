#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include "CDynamicLinker.h"

static int load_count(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    *(unsigned long long *)data = info->dlpi_adds;
    return 1;   /* every entry carries the same counter: stop at the first */
}

unsigned long long gh_dl_load_count(void) {
    unsigned long long adds = 0;
    dl_iterate_phdr(load_count, &adds);
    return adds;
}

struct paths {
    char **items;
    size_t count, capacity;
};

static int collect(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct paths *p = data;
    if (info->dlpi_name == NULL || info->dlpi_name[0] != '/') return 0;
    if (p->count == p->capacity) {
        size_t capacity = p->capacity ? p->capacity * 2 : 64;
        char **items = realloc(p->items, capacity * sizeof *items);
        if (items == NULL) return 1;
        p->items = items;
        p->capacity = capacity;
    }
    char *copy = strdup(info->dlpi_name);
    if (copy == NULL) return 1;
    p->items[p->count++] = copy;
    return 0;
}

void gh_dl_pin_loaded_objects(void) {
    struct paths p = {NULL, 0, 0};
    /* Names first: dl_iterate_phdr holds the loader's lock, dlopen runs after. */
    dl_iterate_phdr(collect, &p);
    for (size_t i = 0; i < p.count; i++) {
        void *handle = dlopen(p.items[i], RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        if (handle != NULL) dlclose(handle);
        free(p.items[i]);
    }
    free(p.items);
}

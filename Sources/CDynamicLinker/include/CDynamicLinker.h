// The dynamic linker's GNU interfaces (dl_iterate_phdr, RTLD_NODELETE), which
// need _GNU_SOURCE: the Glibc module Swift imports is built without it.
#ifndef GATEHOUSE_CDYNAMICLINKER_H
#define GATEHOUSE_CDYNAMICLINKER_H

/// How many objects the dynamic linker has loaded since the process started
/// (`dlpi_adds` of `dl_iterate_phdr`). A `dlopen` that finds its object
/// already loaded does not move it.
unsigned long long gh_dl_load_count(void);

/// Promotes every loaded object with an absolute path to RTLD_NODELETE
/// (`dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)`, then `dlclose`
/// of that extra reference), so that its last `dlclose` leaves it mapped.
void gh_dl_pin_loaded_objects(void);

#endif

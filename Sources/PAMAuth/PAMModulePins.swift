import CDynamicLinker

/// Keeps the shared objects a PAM transaction loaded (its modules and their
/// libraries) loaded after `pam_end`.
///
/// libpam `dlopen`s every module of the stack in `pam_start` and `dlclose`s
/// them in `pam_end`. With one login at a time nothing else holds them, so
/// each login mapped, relocated and unmapped the same modules again (about
/// 3% of a login's instructions in `pam_start` alone, plus the kernel's
/// `mmap` and `munmap`). When a transaction has loaded new objects, every
/// loaded object is promoted to `RTLD_NODELETE`, so the next `pam_start`'s
/// `dlopen` finds its modules in place. PAM still runs each module's
/// functions and cleanups per transaction; only the mapping stays, as it
/// already did whenever two logins overlapped.
enum PAMModulePins {
    /// `gh_dl_load_count`: objects loaded since the process started.
    static func loadCount() -> UInt64 { UInt64(gh_dl_load_count()) }

    /// Pins every loaded object (`gh_dl_pin_loaded_objects`) if any was
    /// loaded since `loadCount()` returned `since`; otherwise does nothing,
    /// which is every login once the stack's modules are pinned.
    static func pinNewlyLoaded(since: UInt64) {
        guard loadCount() != since else { return }
        gh_dl_pin_loaded_objects()
    }
}

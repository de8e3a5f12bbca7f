// swift-tools-version:6.0
import PackageDescription

// Dependency direction (see ../shared/DESIGN.md):
//   CLibSSH <- SSHServer, CPAM <- PAMAuth; the pure libraries (Lockbox,
//   CmdletPolicy, CmdletShell, Transcript) import no C module; Gateway wires
//   everything; the executables stay thin.
let package = Package(
    name: "Gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehoused", targets: ["gatehoused"]),
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .executable(name: "gatehouse-demo-mailbox", targets: ["gatehouse-demo-mailbox"]),
        .executable(name: "gatehouse-pam-worker", targets: ["gatehouse-pam-worker"]),
        .executable(name: "gatehouse-web", targets: ["gatehouse-web"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // The web console's HTTP server: linked by gatehouse-web alone (issue 14).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh",
                       providers: [.apt(["libssh-dev"])]),
        .systemLibrary(name: "CPAM", pkgConfig: "pam",
                       providers: [.apt(["libpam0g-dev"])]),
        // QR codes for `gatehouse mfa` (the operator's CLI only; the daemon never links it).
        .systemLibrary(name: "CQREncode", pkgConfig: "libqrencode",
                       providers: [.apt(["libqrencode-dev"])]),
        .target(name: "GatehouseCore"),
        .target(name: "SSHServer", dependencies: ["CLibSSH", "GatehouseCore",
                                                  .product(name: "Logging", package: "swift-log")]),
        // dl_iterate_phdr and RTLD_NODELETE need _GNU_SOURCE (PAMAuth keeps PAM modules loaded).
        .target(name: "CDynamicLinker", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "PAMAuth", dependencies: ["CPAM", "CDynamicLinker", "GatehouseCore", "PAMWorkers"]),
        // The daemon's side of PAM (the worker protocol and pool): it links no
        // libpam, so no PAM code is ever mapped in the daemon (issue 11).
        .target(name: "PAMWorkers", dependencies: ["GatehouseCore", .product(name: "Logging", package: "swift-log")]),
        // seccomp, classic BPF, capabilities and prctl: the kernel headers the
        // Glibc module leaves out (Linux only; empty elsewhere).
        .target(name: "CSandbox"),
        // The network side's confinement: privilege drop, seccomp filter,
        // socket activation (Linux only).
        .target(name: "Sandbox", dependencies: ["CSandbox", "GatehouseCore"]),
        // What every policy file shares: YAML with file:line diagnostics,
        // durations, sizes, anchored patterns, ASCII rules.
        .target(name: "PolicyFormat", dependencies: ["GatehouseCore", "Yams"]),
        // Users, keys, groups, managers, tenants (directory.yaml).
        .target(name: "Directory", dependencies: ["GatehouseCore", "PolicyFormat", "Yams"]),
        .target(name: "CmdletPolicy", dependencies: ["GatehouseCore", "PolicyFormat", "Yams"]),
        .target(name: "Lockbox", dependencies: [
            "GatehouseCore", "PolicyFormat", "Directory", "Yams",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "CmdletShell", dependencies: ["GatehouseCore", "PolicyFormat", "CmdletPolicy"]),
        .target(name: "Transcript", dependencies: [
            "GatehouseCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // The web console's pure parts, shared by the monitor, the CLI and
        // gatehouse-web: the typed web channel, server-side sessions, CSRF,
        // API tokens (hashed, tenant-scoped; their SQLite file), HTML escaping,
        // paging. No HTTP server here: only gatehouse-web links Hummingbird.
        .target(name: "ConsoleCore", dependencies: [
            "GatehouseCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "Gateway", dependencies: [
            "GatehouseCore", "SSHServer", "PAMWorkers", "PolicyFormat", "Directory", "Lockbox", "CmdletPolicy",
            "CmdletShell", "Transcript", "ConsoleCore", "Yams",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The shared PostgreSQL store of a fleet (issue 13): the Lockbox store,
        // the user lockouts and the review index on postgres-nio. Only the
        // monitor (gatehoused) and the operator CLI link it; Lockbox,
        // Transcript and Gateway stay free of it and are handed its objects.
        .target(name: "PostgresStore", dependencies: [
            "GatehouseCore", "Lockbox", "Transcript",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The daemon's life (configuration, demo set-up with its pam_wrapper
        // re-exec, signals) lives here, not in Gateway: only this process
        // does it, and only here is a Logger made.
        .executableTarget(name: "gatehoused", dependencies: [
            "Gateway", "GatehouseCore", "CmdletPolicy", "SSHServer", "Transcript", "Sandbox", "Lockbox", "PostgresStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "gatehouse", dependencies: [
            "Gateway", "GatehouseCore", "PolicyFormat", "CmdletPolicy", "CmdletShell", "Lockbox", "Transcript",
            "Directory", "CQREncode", "PostgresStore", "ConsoleCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The demo backend: a stand-in for a real mailbox service. It is a
        // separate program on purpose: the gateway only ever reaches it
        // through posix_spawn and an argv template, as it would a real one.
        // Linked statically (Swift runtime and glibc): with no Foundation and
        // no dynamic loading it starts in about 2 ms of CPU instead of 17 ms,
        // which every demo command pays (docs/performance.md).
        .executableTarget(name: "gatehouse-demo-mailbox",
                          linkerSettings: [.unsafeFlags(["-static-executable"], .when(platforms: [.linux]))]),
        // One PAM transaction at a time for the daemon's PAMWorkerPool, on the
        // socket it inherits as descriptor 3; the only program that runs PAM.
        .executableTarget(name: "gatehouse-pam-worker", dependencies: ["PAMAuth", "PAMWorkers", "GatehouseCore"]),
        // The approval and review console and the activity API (issue 14):
        // started by the monitor with a channel, drops to its own account and
        // asks the monitor for everything. The only process that links Hummingbird.
        .executableTarget(name: "gatehouse-web", dependencies: [
            "ConsoleCore", "GatehouseCore", "Sandbox",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // make bench-parser: parse+bind+authorize timing (bench/parser).
        .executableTarget(name: "gatehouse-bench-parser", dependencies: ["CmdletShell", "CmdletPolicy", "GatehouseCore"],
                          path: "bench/parser"),
        // `make bench-lockbox`: claim() latency with 100,000 historical requests.
        .executableTarget(name: "lockbox-claim-bench", dependencies: [
            "Lockbox", "GatehouseCore", "PostgresStore", .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "bench/LockboxClaimBench"),
        // `make bench-output`: server CPU per byte of backend output, sanitised and recorded.
        .executableTarget(name: "output-path-bench", dependencies: ["CmdletShell", "GatehouseCore", "Transcript"],
                          path: "bench/OutputPathBench", swiftSettings: [.swiftLanguageMode(.v6)]),
        // `make bench-audit`: events/s and fdatasyncs per event with 1, 8, 64 recording threads.
        .executableTarget(name: "audit-commit-bench", dependencies: [
            "Transcript", "GatehouseCore", .product(name: "Crypto", package: "swift-crypto"),
        ], path: "bench/AuditCommitBench", swiftSettings: [.swiftLanguageMode(.v6)]),
        // One process of the two-process store test (LockboxTests).
        .executableTarget(name: "lockbox-race-helper", dependencies: ["Lockbox", "GatehouseCore", "PostgresStore"],
                          path: "Tests/LockboxRaceHelper"),
        // One process per scripted PAM conversation under pam_wrapper (PAMAuthTests),
        // which must be preloaded before the process starts.
        .executableTarget(name: "pam-conversation-helper", dependencies: ["PAMAuth", "PAMWorkers", "TestSupport"],
                          path: "Tests/PAMConversationHelper"),
        // Descriptor failure paths that need a process of their own: a file-size
        // limit, an interposed close(2) (GatehouseCoreTests, TranscriptTests).
        .executableTarget(name: "descriptor-helper", dependencies: ["GatehouseCore", "Transcript"],
                          path: "Tests/DescriptorHelper"),
        // Confinement is irreversible: each scenario drops privileges and enters
        // the sandbox in a process of its own (SandboxTests).
        .executableTarget(name: "sandbox-helper", dependencies: ["Sandbox", "CSandbox", "GatehouseCore"],
                          path: "Tests/SandboxHelper"),
        .target(name: "TestSupport", dependencies: ["GatehouseCore", "PAMWorkers"], path: "Tests/TestSupport"),
        .testTarget(name: "CmdletShellTests", dependencies: ["GatehouseCore", "CmdletShell", "CmdletPolicy", "Directory", "TestSupport", "Yams"],
                    exclude: ["Golden"]),
        .testTarget(name: "CmdletPolicyTests", dependencies: ["CmdletPolicy", "PolicyFormat", "Directory", "TestSupport"]),
        .testTarget(name: "LockboxTests", dependencies: ["GatehouseCore", "Lockbox", "Directory", "CmdletPolicy", "TestSupport",
                                                     "PostgresStore", "Transcript",
                                                     .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "GatewayTests", dependencies: ["GatehouseCore", "Gateway", "Directory", "Lockbox", "CmdletShell", "CmdletPolicy", "Transcript", "TestSupport", "SSHServer",
                                                     "ConsoleCore", "PAMWorkers",
                                                     .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TranscriptTests", dependencies: ["GatehouseCore", "Transcript", "TestSupport"]),
        .testTarget(name: "SSHServerTests", dependencies: ["SSHServer", "GatehouseCore", "TestSupport",
                                                          .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PAMAuthTests", dependencies: ["PAMAuth", "PAMWorkers", "GatehouseCore", "TestSupport",
                                                     .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "GatehouseCoreTests", dependencies: ["GatehouseCore", "TestSupport"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "CSandbox", "TestSupport"]),
        .testTarget(name: "ConsoleCoreTests", dependencies: ["ConsoleCore", "GatehouseCore"]),
        .testTarget(name: "GatehousedTests", dependencies: ["GatehouseCore", "gatehoused"]),
    ],
    swiftLanguageModes: [.v6]
)

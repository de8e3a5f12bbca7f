// gatehoused: the Gatehouse SSH gateway daemon. The gateway itself lives in
// the Gateway library; this executable parses the command line, makes the
// logger every library is handed, and runs the daemon's life (Daemon.swift),
// with the demo set-up and its pam_wrapper re-exec (Demo/).
import ArgumentParser
import Logging

struct Gatehoused: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehoused",
        abstract: "Gatehouse: a constrained SSH shell gateway (publickey + PAM MFA, policy-checked cmdlets).")

    @Option(name: .long, help: "Configuration file (default /etc/gatehouse/gatehouse.yaml when it exists; with --demo only when given, over the demo settings).")
    var config: String?

    @Flag(name: .long, help: "Run the demo: create users, keys, TOTP secrets and PAM files under the state directory.")
    var demo = false

    @Option(name: .long, help: "State directory (demo default ./.gatehouse-demo).")
    var stateDir: String?

    @Option(name: .long, help: "Listen address HOST:PORT (default 127.0.0.1:2222; port 0 picks a free one).")
    var listen: String?

    @Option(name: .long, help: "Web console (approvals, review, activity API) address HOST:PORT, or off; plain HTTP only on loopback (make demo uses 127.0.0.1:8080).")
    var webListen: String?

    @Option(name: .long, help: "Policy directory with cmdlets/ and roles/ (demo default ./policies).")
    var policyDir: String?

    @Flag(name: .long, help: "Validate configuration, policies and directory, print a summary and exit (like sshd -t).")
    var checkConfig = false

    @Flag(name: .long, help: "Print every effective setting with its source and exit (like sshd -T).")
    var dumpConfig = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Log format: text (one line per event), or json (one JSON object per line, every metadata key a field, the session id on a session's lines).")
    var logFormat: LogFormat = .text

    enum LogFormat: String, ExpressibleByArgument { case text, json }

    @Flag(name: .customLong("network-side"), help: .hidden)
    var networkSide = false

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of: "
                                  + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if logFormat == .json { LoggingSystem.bootstrap { JSONLogHandler(label: $0) } }
        var logger = Logger(label: networkSide ? "gatehoused-net" : "gatehoused")
        logger.logLevel = level
        if networkSide {
            let status = Daemon.runNetworkSide(logger: logger)
            if status != 0 { throw ExitCode(status) }
            return
        }
        var options = DaemonOptions(configFile: config, demo: demo, stateDirectory: stateDir, listen: listen,
                                    policyDirectory: policyDir, checkConfig: checkConfig, dumpConfig: dumpConfig,
                                    webListen: webListen)
        options.logArguments = ["--log-level", level.rawValue, "--log-format", logFormat.rawValue]
        let status = Daemon.run(options, logger: logger)
        if status != 0 { throw ExitCode(status) }
    }
}

Gatehoused.main()

import CmdletPolicy
import XCTest

/// Sites whose control-character check differed by accident from the one
/// predicate (GatehouseCore/ControlCharacters.swift) and now use it.
final class PolicyControlCharacterTests: XCTestCase {
    /// The executable path check refused C0 and DEL but let C1 controls
    /// through; every other policy string refused all three.
    func testExecutablePathWithAC1ControlIsRefused() {
        let errors = loadErrors(cmdlets: baseCmdlets.replacingOccurrences(of: "/usr/bin/printf", with: "\"/usr/bin/pr\\u009bintf\""))
        XCTAssertEqual(errors.map(\.message), ["executable path contains a control character"])
    }
}

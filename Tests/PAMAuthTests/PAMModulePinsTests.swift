import Foundation
@testable import PAMAuth
import XCTest

/// A module that a transaction loaded stays mapped after the transaction's
/// `dlclose` (libpam's, in `pam_end`), so the next login does not load it again.
final class PAMModulePinsTests: XCTestCase {
    static let module = "/lib/x86_64-linux-gnu/security/pam_permit.so"

    func testAnObjectLoadedSinceTheCountStaysLoadedAfterItsLastClose() throws {
        guard FileManager.default.fileExists(atPath: Self.module) else {
            throw XCTSkip("\(Self.module) is missing (libpam-modules)")
        }
        guard dlopen(Self.module, RTLD_NOW | RTLD_NOLOAD) == nil else {
            throw XCTSkip("\(Self.module) was already loaded in this test process")
        }
        let before = PAMModulePins.loadCount()
        let handle = try XCTUnwrap(dlopen(Self.module, RTLD_NOW), String(cString: dlerror()))
        XCTAssertGreaterThan(PAMModulePins.loadCount(), before)
        PAMModulePins.pinNewlyLoaded(since: before)
        dlclose(handle)
        let again = dlopen(Self.module, RTLD_NOW | RTLD_NOLOAD)
        XCTAssertNotNil(again, "unloaded by its last dlclose")
        if let again { dlclose(again) }
        // Found in place: nothing new was loaded.
        let count = PAMModulePins.loadCount()
        let reopened = try XCTUnwrap(dlopen(Self.module, RTLD_NOW))
        XCTAssertEqual(PAMModulePins.loadCount(), count)
        dlclose(reopened)
    }
}

#if canImport(Glibc)
extension PacketChannel.Pair {
    /// Hands both ends to `body`, which owns them from then on (another
    /// module cannot take the fields of a noncopyable value one by one).
    public consuming func split<R>(_ body: (consuming PacketChannel, consuming PacketChannel) throws -> R) rethrows -> R {
        try body(first, second)
    }
}
#endif

namespace Tessera.Abstractions;

/// <summary>
/// The version of this contract. A plugin is compiled against one version and the host checks it at load:
/// a different <see cref="Major"/> is refused; a plugin built against an older <see cref="Minor"/> of the same
/// major loads (members are only ever added within a major).
/// </summary>
public static class TesseraContract
{
#if TESSERA_CONTRACT_MAJOR_2
    // Only the test fixture that simulates a future contract builds this branch.
    public const int Major = 2;
#else
    public const int Major = 1;
#endif
    public const int Minor = 0;

    /// <summary>The contract version as <c>Major.Minor</c>.</summary>
    public static Version Version => new(Major, Minor);
}

using System.Diagnostics.CodeAnalysis;

namespace Tessera.Abstractions;

/// <summary>A device address <c>kind:index</c>, e.g. <c>cpu:0</c>, <c>cuda:1</c>, <c>ascend:0</c>.</summary>
public readonly record struct DeviceId(string Kind, int Index)
{
    public override string ToString() => $"{Kind}:{Index}";

    /// <summary>Parses <c>kind:index</c>, or a bare <c>kind</c> meaning index 0. Kinds are lowercase letters, digits, '-' or '_'.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out DeviceId? id)
    {
        id = null;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var parts = text.Trim().ToLowerInvariant().Split(':');
        if (parts.Length > 2) return false;
        var kind = parts[0];
        if (kind.Length == 0 || !kind.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_')) return false;
        int index = 0;
        if (parts.Length == 2 && (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, null, out index))) return false;
        id = new DeviceId(kind, index);
        return true;
    }

    /// <summary>Parses or throws <see cref="ArgumentException"/> that says the expected form.</summary>
    public static DeviceId Parse(string text) =>
        TryParse(text, out var id)
            ? id.Value
            : throw new ArgumentException($"'{text}' is not a device name; expected kind:index such as cpu:0 or cuda:1.", nameof(text));
}

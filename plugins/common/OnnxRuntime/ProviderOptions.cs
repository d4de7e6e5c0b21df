using System.Globalization;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>One execution-provider option: its name, what values it takes, and what it does.</summary>
public sealed record ProviderOption(string Name, ProviderOptionKind Kind, string Description, IReadOnlyList<string>? Allowed = null, long Min = 0, long Max = long.MaxValue)
{
    /// <summary>What a user may write, for error messages and <c>--help</c>.</summary>
    public string AllowedText => Kind switch
    {
        ProviderOptionKind.Choice => string.Join(", ", Allowed!),
        ProviderOptionKind.Flag => "0, 1",
        ProviderOptionKind.Integer => Max == long.MaxValue ? $"a whole number >= {Min}" : $"a whole number from {Min} to {Max}",
        ProviderOptionKind.Bytes => "a size in bytes, optionally with a unit (e.g. 2147483648, 2GiB, 512MiB)",
        ProviderOptionKind.List => $"a comma-separated list{(Allowed is null ? "" : " of " + string.Join(", ", Allowed))}",
        _ => "text",
    };

    /// <summary>Checks and normalises a value (units expanded, flags as 0/1); throws naming the option and what is allowed.</summary>
    public string Normalize(string plugin, string value)
    {
        string Fail() => throw new ArgumentException($"{plugin} setting '{Name}' is '{value}'; allowed: {AllowedText}.");
        var v = value.Trim();
        switch (Kind)
        {
            case ProviderOptionKind.Choice:
                return Allowed!.FirstOrDefault(a => string.Equals(a, v, StringComparison.OrdinalIgnoreCase)) ?? Fail();
            case ProviderOptionKind.Flag:
                return v.ToLowerInvariant() switch { "1" or "true" or "on" => "1", "0" or "false" or "off" => "0", _ => Fail() };
            case ProviderOptionKind.Integer:
                return long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= Min && n <= Max ? n.ToString(CultureInfo.InvariantCulture) : Fail();
            case ProviderOptionKind.Bytes:
                return ParseBytes(v) is { } bytes && bytes > 0 ? bytes.ToString(CultureInfo.InvariantCulture) : Fail();
            case ProviderOptionKind.List:
                var items = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (items.Length == 0) Fail();
                if (Allowed is not null && items.FirstOrDefault(i => !Allowed.Contains(i)) is { } bad)
                    throw new ArgumentException($"{plugin} setting '{Name}' lists '{bad}'; allowed: {AllowedText}.");
                return string.Join(",", items);
            default:
                return v.Length > 0 ? v : Fail();
        }
    }

    private static long? ParseBytes(string v)
    {
        var units = new (string Suffix, long Factor)[] { ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40), ("KB", 1000), ("MB", 1000_000), ("GB", 1000_000_000), ("B", 1) };
        foreach (var (suffix, factor) in units)
            if (v.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
                return double.TryParse(v[..^suffix.Length].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d > 0 && d * factor < long.MaxValue ? (long)(d * factor) : null;
        return long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null;
    }
}

public enum ProviderOptionKind { Integer, Bytes, Flag, Choice, List, Text }

/// <summary>The options an execution provider accepts, validated before they reach ONNX Runtime.</summary>
public sealed class ProviderOptionSet(string plugin, IReadOnlyList<ProviderOption> options)
{
    public string Plugin => plugin;
    public IReadOnlyList<ProviderOption> Options => options;

    /// <summary>
    /// Validates <paramref name="settings"/>: keys not in the set (other than <paramref name="pluginKeys"/>, which the
    /// plugin reads itself) are errors listing every allowed key; values are normalised. Returns provider options only.
    /// </summary>
    public Dictionary<string, string> Validate(IReadOnlyDictionary<string, string> settings, IReadOnlyCollection<string>? pluginKeys = null)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in settings)
        {
            if (pluginKeys?.Contains(key) == true) continue;
            var option = options.FirstOrDefault(o => o.Name == key)
                ?? throw new ArgumentException($"Unknown {plugin} setting '{key}'. Allowed settings: {string.Join(", ", (pluginKeys ?? []).Concat(options.Select(o => o.Name)))}."
                    + (options.FirstOrDefault(o => string.Equals(o.Name, key, StringComparison.OrdinalIgnoreCase) || o.Name.Replace("_", "") == key.Replace("_", "").Replace("-", "").ToLowerInvariant()) is { } near ? $" Did you mean '{near.Name}'?" : ""));
            result[key] = option.Normalize(plugin, value);
        }
        return result;
    }

    /// <summary>
    /// The options one session gets: the plugin's, then <c>device_id</c> = the device's index, then the compile's
    /// device settings (validated here), later ones winning.
    /// </summary>
    public Dictionary<string, string> ForSession(IReadOnlyDictionary<string, string> pluginOptions, int deviceIndex, IReadOnlyDictionary<string, string> deviceSettings)
    {
        var values = new Dictionary<string, string>(pluginOptions, StringComparer.Ordinal) { ["device_id"] = deviceIndex.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        foreach (var (k, v) in Validate(deviceSettings)) values[k] = v;
        return values;
    }

    /// <summary>One line per option: name, allowed values, description.</summary>
    public string Describe() => string.Join(Environment.NewLine, options.Select(o => $"  {o.Name,-26} {o.Description} ({o.AllowedText})"));
}

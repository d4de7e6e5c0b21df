using System.Collections.Concurrent;
using Tessera.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>
/// A module that writes its own ONNX: implement this on your TorchSharp module instead of registering a mapping.
/// <see cref="ExportOnnx"/> gets the module's input values (in its <c>forward</c> order) and returns its outputs;
/// children are exported with <see cref="ExportContext.Module(string, nn.Module, OnnxValue[])"/> so their node and
/// weight names follow the module tree.
/// </summary>
public interface IOnnxExportable
{
    OnnxValue[] ExportOnnx(ExportContext ctx, OnnxValue[] inputs);
}

/// <summary>
/// The registry of ONNX mappings, one per module type. A mapping turns a module and its input values into output
/// values with ONNX ops, reading the module's weights through <see cref="ExportContext.Weight"/>. The registry is open:
/// <see cref="Register{TModule}"/> adds (or replaces) the mapping of a type. Lookup order for a module of type T:
/// a mapping registered for T itself; T implementing <see cref="IOnnxExportable"/>; then mappings registered for T's
/// base types, nearest first (a generic type also matches a mapping registered for its open definition, e.g.
/// <c>ModuleList&lt;&gt;</c>). Stock TorchSharp layers are registered by <see cref="StockMappings"/> on first use.
/// </summary>
/// <example>
/// <code>
/// // y = x * scale, for a module class ScaleBy with a Parameter "scale"
/// ModuleMappings.Register&lt;ScaleBy&gt;((ctx, m, x) =&gt; ctx.Mul(x[0], ctx.Weight("scale", m.scale)));
/// </code>
/// </example>
public static class ModuleMappings
{
    /// <summary>A mapping with one output.</summary>
    public delegate OnnxValue Mapping<in TModule>(ExportContext ctx, TModule module, OnnxValue[] inputs) where TModule : nn.Module;

    /// <summary>A mapping with several outputs (e.g. attention: output and weights).</summary>
    public delegate OnnxValue[] MultiMapping<in TModule>(ExportContext ctx, TModule module, OnnxValue[] inputs) where TModule : nn.Module;

    private static readonly ConcurrentDictionary<Type, MultiMapping<nn.Module>> Mappings = new();

    static ModuleMappings() => StockMappings.RegisterInto();

    /// <summary>Registers (or replaces) the single-output mapping of <typeparamref name="TModule"/> and its subclasses.</summary>
    public static void Register<TModule>(Mapping<TModule> mapping) where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(mapping);
        Mappings[typeof(TModule)] = (ctx, m, x) => [mapping(ctx, (TModule)m, x)];
    }

    /// <summary>Registers (or replaces) a mapping with several outputs.</summary>
    public static void RegisterMulti<TModule>(MultiMapping<TModule> mapping) where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(mapping);
        Mappings[typeof(TModule)] = (ctx, m, x) => mapping(ctx, (TModule)m, x);
    }

    /// <summary>
    /// Registers a mapping for a type known at run time, such as an open generic definition (<c>typeof(ModuleList&lt;&gt;)</c>).
    /// </summary>
    public static void Register(Type moduleType, MultiMapping<nn.Module> mapping)
    {
        ArgumentNullException.ThrowIfNull(moduleType);
        ArgumentNullException.ThrowIfNull(mapping);
        if (!moduleType.IsGenericTypeDefinition && !typeof(nn.Module).IsAssignableFrom(moduleType))
            throw new ArgumentException($"{moduleType.FullName} is not a TorchSharp module type.", nameof(moduleType));
        Mappings[moduleType] = mapping;
    }

    /// <summary>Module types with a registered mapping (for documentation and tests).</summary>
    public static IReadOnlyCollection<Type> MappedTypes => Mappings.Keys.ToArray();

    /// <summary>True when a module of <paramref name="moduleType"/> can be exported (registered, self-exporting, or by a base type).</summary>
    public static bool CanExport(Type moduleType) => Find(moduleType) is not null;

    /// <summary>Exports <paramref name="module"/> at the current path; all of its outputs.</summary>
    public static OnnxValue[] ExportAll(ExportContext ctx, nn.Module module, OnnxValue[] inputs)
    {
        var map = Find(module.GetType()) ?? throw new UnmappedModuleException(ctx.ModulePath, module.GetType());
        return map(ctx, module, inputs);
    }

    /// <summary>Exports <paramref name="module"/> at the current path; it must have exactly one output.</summary>
    public static OnnxValue Export(ExportContext ctx, nn.Module module, OnnxValue[] inputs)
    {
        var outputs = ExportAll(ctx, module, inputs);
        return outputs.Length == 1
            ? outputs[0]
            : throw new InvalidOperationException($"Module '{ctx.ModulePath}' ({module.GetType().Name}) exports {outputs.Length} outputs; use ExportContext.ModuleOutputs to take them all.");
    }

    private static MultiMapping<nn.Module>? Find(Type type)
    {
        if (Mappings.TryGetValue(type, out var exact)) return exact;
        if (typeof(IOnnxExportable).IsAssignableFrom(type)) return (ctx, m, x) => ((IOnnxExportable)m).ExportOnnx(ctx, x);
        for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
        {
            if (Mappings.TryGetValue(t, out var map)) return map;
            if (t.IsGenericType && Mappings.TryGetValue(t.GetGenericTypeDefinition(), out var open)) return open;
        }
        return null;
    }
}

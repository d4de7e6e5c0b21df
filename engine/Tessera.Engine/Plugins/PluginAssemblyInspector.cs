using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Tessera.Abstractions;

namespace Tessera.Engine.Plugins;

/// <summary>
/// Reads a candidate plugin assembly's metadata without loading it: whether it is a .NET assembly at all, which
/// Tessera.Abstractions it references and which contract version its <see cref="TesseraPluginAttribute"/> records.
/// Checking before loading means a corrupt file or a plugin for another contract never runs any code.
/// </summary>
internal static class PluginAssemblyInspector
{
    public sealed record Facts(bool HasPluginAttribute, Version? DeclaredContract, Version? ReferencedAbstractions);

    /// <summary>Reads the facts, or throws <see cref="BadImageFormatException"/> for a file that is not a .NET assembly.</summary>
    public static Facts Inspect(string path)
    {
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        if (!pe.HasMetadata) throw new BadImageFormatException("the file has no .NET metadata");
        var md = pe.GetMetadataReader();
        if (!md.IsAssembly) throw new BadImageFormatException("the file is a module, not an assembly");

        Version? referenced = md.AssemblyReferences
            .Select(h => md.GetAssemblyReference(h))
            .Where(r => md.GetString(r.Name) == "Tessera.Abstractions")
            .Select(r => r.Version)
            .FirstOrDefault();

        foreach (var h in md.GetAssemblyDefinition().GetCustomAttributes())
        {
            var attribute = md.GetCustomAttribute(h);
            if (AttributeTypeName(md, attribute) != nameof(TesseraPluginAttribute)) continue;
            // Blob: prolog 0x0001, the Type argument as a serialized string, then contractMajor and contractMinor (int32).
            var blob = md.GetBlobReader(attribute.Value);
            if (blob.ReadUInt16() != 1) return new Facts(true, null, referenced);
            blob.ReadSerializedString();
            if (blob.RemainingBytes < 8) return new Facts(true, null, referenced);
            int major = blob.ReadInt32(), minor = blob.ReadInt32();
            return new Facts(true, new Version(major, minor), referenced);
        }
        return new Facts(false, null, referenced);
    }

    private static string? AttributeTypeName(MetadataReader md, CustomAttribute attribute)
    {
        if (attribute.Constructor.Kind != HandleKind.MemberReference) return null;
        var ctor = md.GetMemberReference((MemberReferenceHandle)attribute.Constructor);
        return ctor.Parent.Kind == HandleKind.TypeReference
            ? md.GetString(md.GetTypeReference((TypeReferenceHandle)ctor.Parent).Name)
            : null;
    }

    /// <summary>True when the file looks like a managed assembly that references the Tessera contract.</summary>
    public static bool LooksLikePlugin(string path)
    {
        try
        {
            var facts = Inspect(path);
            return facts.HasPluginAttribute || facts.ReferencedAbstractions is not null;
        }
        catch (Exception e) when (e is BadImageFormatException or IOException or InvalidOperationException)
        {
            return false;
        }
    }
}

using System.Reflection;
using System.Runtime.Loader;

namespace Tessera.Export;

/// <summary>Finds and creates an <see cref="IExportRecipe"/> in a user's assembly (what <c>tessera export module</c> runs).</summary>
public static class ExportRecipes
{
    /// <summary>
    /// Loads <paramref name="assemblyPath"/> into the default context (so TorchSharp and the exporter are the
    /// caller's own, shared with it), resolves its other dependencies from its deps.json, and creates the recipe
    /// <paramref name="recipeName"/> (a full type name). Errors name the assembly and list the recipes it has.
    /// </summary>
    public static IExportRecipe Load(string assemblyPath, string recipeName)
    {
        var full = Path.GetFullPath(assemblyPath);
        if (!File.Exists(full)) throw new FileNotFoundException($"Assembly {assemblyPath} does not exist (give the .dll that holds your recipe class).");
        var resolver = new AssemblyDependencyResolver(full);
        AssemblyLoadContext.Default.Resolving += (context, name) =>
            resolver.ResolveAssemblyToPath(name) is { } path ? context.LoadFromAssemblyPath(path) : null;
        Assembly assembly;
        try
        {
            assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(full);
        }
        catch (BadImageFormatException)
        {
            throw new InvalidDataException($"{assemblyPath} is not a .NET assembly.");
        }
        var type = assembly.GetType(recipeName);
        if (type is null)
        {
            var recipes = string.Join(", ", RecipeTypes(assembly).Select(t => t.FullName));
            throw new ArgumentException($"--recipe {recipeName}: no such type in {Path.GetFileName(full)}; recipes there: {(recipes.Length > 0 ? recipes : "(none)")}.");
        }
        if (!typeof(IExportRecipe).IsAssignableFrom(type) || type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null)
            throw new ArgumentException($"--recipe {recipeName} must be a non-abstract class implementing Tessera.Export.IExportRecipe with a public parameterless constructor.");
        return (IExportRecipe)Activator.CreateInstance(type)!;
    }

    /// <summary>The recipe classes an assembly holds (those whose types load).</summary>
    public static IEnumerable<Type> RecipeTypes(Assembly assembly) =>
        SafeTypes(assembly).Where(t => typeof(IExportRecipe).IsAssignableFrom(t) && !t.IsAbstract);

    private static IEnumerable<Type> SafeTypes(Assembly a)
    {
        try
        {
            return a.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            return e.Types.OfType<Type>();
        }
    }
}

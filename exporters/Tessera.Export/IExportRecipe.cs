using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>
/// What <c>tessera export module --assembly my.dll --recipe My.Recipe</c> runs: a public class with a parameterless
/// constructor in your assembly that builds your module (weights loaded) and says how to export it. Your assembly
/// registers any mappings it needs (e.g. in the recipe's constructor or your modules' static constructors).
/// </summary>
public interface IExportRecipe
{
    /// <summary>The module to export, with its trained weights.</summary>
    nn.Module CreateModule();

    /// <summary>Inputs, outputs (with dynamic axes), validation samples and tolerance.</summary>
    ModuleExportSpec CreateSpec();
}

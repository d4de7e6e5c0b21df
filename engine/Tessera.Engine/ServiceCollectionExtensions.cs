using Microsoft.Extensions.DependencyInjection.Extensions;
using Tessera.Engine;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Tessera engine in an application's service collection.</summary>
public static class TesseraEngineServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="EngineOptions"/> and a singleton <see cref="TesseraEngine"/> (plugins load when it is first
    /// resolved). Calling it again only applies <paramref name="configure"/> to the same options.
    /// </summary>
    public static IServiceCollection AddTesseraEngine(this IServiceCollection services, Action<EngineOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var existing = services.FirstOrDefault(d => d.ServiceType == typeof(EngineOptions))?.ImplementationInstance as EngineOptions;
        var options = existing ?? new EngineOptions();
        configure?.Invoke(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton(sp => new TesseraEngine(sp.GetRequiredService<EngineOptions>()));
        return services;
    }
}

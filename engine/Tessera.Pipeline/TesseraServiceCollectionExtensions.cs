using Microsoft.Extensions.DependencyInjection.Extensions;
using Tessera.Engine;
using Tessera.Pipeline;

namespace Tessera.Pipeline
{
    /// <summary>Text-to-image for applications: resolve it from DI after <c>services.AddTessera(...)</c>.</summary>
    public interface ITextToImage
    {
        /// <summary>Generates one image. Cancellation stops between AR tokens or denoising steps.</summary>
        Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default);
    }

    /// <summary>What <c>AddTessera</c> configures.</summary>
    public sealed class TesseraOptions
    {
        /// <summary>Plugin folders, settings, fallback policy and stage placement.</summary>
        public EngineOptions Engine { get; } = new();

        /// <summary>Model package folder; null means the shipped default.</summary>
        public string? ModelDirectory { get; set; }

        /// <summary>Device for the AR stage; null means the engine's placement, else auto.</summary>
        public string? ArDevice { get; set; }

        /// <summary>Device for the decoder stage; null means the engine's placement, else auto.</summary>
        public string? DecoderDevice { get; set; }
    }

    /// <summary>The pipeline (owned by the service provider, which disposes it).</summary>
    internal sealed class TextToImage(ImageGenerator generator) : ITextToImage
    {
        public Task<GenerationResult> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress, CancellationToken cancellationToken) =>
            Task.Run(() => generator.Generate(request, progress, cancellationToken), cancellationToken);
    }
}

namespace Microsoft.Extensions.DependencyInjection
{
    /// <summary>Registers Tessera's text-to-image pipeline.</summary>
    public static class TesseraServiceCollectionExtensions
    {
        /// <summary>
        /// Adds the engine, the pipeline, and two ways to call it: <see cref="ITextToImage"/> and .NET's
        /// <see cref="Microsoft.Extensions.AI.IImageGenerator"/> (<see cref="TesseraImageGenerator"/>), both singletons over
        /// one <see cref="ImageGenerator"/>. The model package is opened and the stages are
        /// compiled when the service is first resolved; a missing model, unknown device or bad plugin setting fails
        /// there with a message naming it. Calling it again only applies <paramref name="configure"/> to the same options.
        /// </summary>
        public static IServiceCollection AddTessera(this IServiceCollection services, Action<TesseraOptions>? configure = null)
        {
            ArgumentNullException.ThrowIfNull(services);
            var options = services.FirstOrDefault(d => d.ServiceType == typeof(TesseraOptions))?.ImplementationInstance as TesseraOptions ?? new TesseraOptions();
            configure?.Invoke(options);
            services.TryAddSingleton(options);
            services.TryAddSingleton(options.Engine);
            services.AddTesseraEngine();
            services.TryAddSingleton(sp =>
            {
                var o = sp.GetRequiredService<TesseraOptions>();
                var engine = sp.GetRequiredService<TesseraEngine>();
                var package = ModelPackage.Open(o.ModelDirectory ?? ModelPackage.DefaultDirectory());
                return new ImageGenerator(engine, package, o.ArDevice ?? engine.Options.DeviceFor("ar"), o.DecoderDevice ?? engine.Options.DeviceFor("decoder"));
            });
            services.TryAddSingleton<ITextToImage>(sp => new TextToImage(sp.GetRequiredService<ImageGenerator>()));
            services.TryAddSingleton<Microsoft.Extensions.AI.IImageGenerator>(sp => new TesseraImageGenerator(sp.GetRequiredService<ImageGenerator>()));
            return services;
        }
    }
}

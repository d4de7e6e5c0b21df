#pragma warning disable MEAI001 // IImageGenerator is experimental in Microsoft.Extensions.AI
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Tessera.Pipeline;

namespace Tessera.Pipeline.Tests;

/// <summary>Tessera behind Microsoft.Extensions.AI's IImageGenerator, resolved from DI after AddTessera.</summary>
[TestClass]
public sealed class ImageGeneratorAbstractionTests
{
    private static string _dir = "";
    private static ServiceProvider? _provider;

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        _dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "meai-" + Guid.NewGuid().ToString("N"));
        var model = TinyPackage.Create(Path.Combine(_dir, "model"), seed: 3);
        var services = new ServiceCollection();
        services.AddTessera(o =>
        {
            o.ModelDirectory = model;
            o.Engine.UseDefaultPluginDirectory = false;
            o.Engine.UseEnvironmentPluginPath = false;
            o.Engine.CacheDirectory = Path.Combine(_dir, "cache");
            o.Engine.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        });
        _provider = services.BuildServiceProvider();
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        _provider?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static IImageGenerator Generator => _provider!.GetRequiredService<IImageGenerator>();

    [TestMethod]
    public async Task GenerateImagesAsyncGivesTheSameBytesAsTheTesseraApiForEachSeed()
    {
        const string prompt = "the word \"SUN\" in blue on a white background";
        var response = await Generator.GenerateImagesAsync(prompt, new ImageGenerationOptions { Count = 2, AdditionalProperties = new() { ["seed"] = 7UL, ["steps"] = 4 } });
        Assert.AreEqual(2, response.Contents.Count);
        var tessera = _provider!.GetRequiredService<ITextToImage>();
        for (int i = 0; i < 2; i++)
        {
            var image = (DataContent)response.Contents[i];
            Assert.AreEqual("image/png", image.MediaType);
            var direct = await tessera.GenerateAsync(new GenerationRequest(prompt) { Seed = 7UL + (ulong)i, Steps = 4 });
            CollectionAssert.AreEqual(direct.Png, image.Data.ToArray(), $"image {i}: seed {7 + i}");
        }
        CollectionAssert.AreNotEqual(((DataContent)response.Contents[0]).Data.ToArray(), ((DataContent)response.Contents[1]).Data.ToArray());
        Assert.AreEqual("tessera", Generator.GetService<ImageGeneratorMetadata>()!.ProviderName);
    }

    [TestMethod]
    public async Task AnEditConditionsOnTheOriginalImage()
    {
        var source = await Generator.GenerateImagesAsync("the word \"MOON\" in red on a yellow background", new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 1UL, ["steps"] = 3 } });
        var png = ((DataContent)source.Contents[0]).Data;
        var edited = await Generator.EditImageAsync(png, "source.png", "the word \"MOON\" in blue", new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 2UL, ["steps"] = 3 } });
        var plain = await Generator.GenerateImagesAsync("the word \"MOON\" in blue", new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 2UL, ["steps"] = 3 } });
        var direct = await _provider!.GetRequiredService<ITextToImage>().GenerateAsync(new GenerationRequest("the word \"MOON\" in blue")
        {
            Seed = 2, Steps = 3, SourceRgb = Tessera.Data.ImageFiles.DecodeRgb(png.ToArray(), "source.png", 64).Rgb,
        });
        CollectionAssert.AreEqual(direct.Png, ((DataContent)edited.Contents[0]).Data.ToArray(), "the edit is image-to-image on the original");
        CollectionAssert.AreNotEqual(((DataContent)plain.Contents[0]).Data.ToArray(), ((DataContent)edited.Contents[0]).Data.ToArray());
    }

    [TestMethod]
    public async Task OptionsTheModelCannotHonourAreRefusedNamingThemAndCancellationStops()
    {
        var e = await Assert.ThrowsExactlyAsync<ArgumentException>(() => Generator.GenerateImagesAsync("x", new ImageGenerationOptions { ImageSize = new System.Drawing.Size(512, 512) }));
        StringAssert.Contains(e.Message, "64x64 only");
        e = await Assert.ThrowsExactlyAsync<ArgumentException>(() => Generator.GenerateImagesAsync("x", new ImageGenerationOptions { MediaType = "image/jpeg" }));
        StringAssert.Contains(e.Message, "image/png");
        await Assert.ThrowsExactlyAsync<NotSupportedException>(() => Generator.GenerateImagesAsync("x", new ImageGenerationOptions { ResponseFormat = ImageGenerationResponseFormat.Uri }));
        e = await Assert.ThrowsAsync<ArgumentException>(() => Generator.GenerateImagesAsync("x", new ImageGenerationOptions { Count = 1000 }));
        StringAssert.Contains(e.Message, "ImageGenerationOptions.Count");
        e = await Assert.ThrowsAsync<ArgumentException>(() => Generator.GenerateImagesAsync("x", new ImageGenerationOptions { AdditionalProperties = new() { ["cfg"] = double.NaN } }));
        StringAssert.Contains(e.Message, "AdditionalProperties[\"cfg\"]");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsExactlyAsync<TaskCanceledException>(() => Generator.GenerateImagesAsync("the word \"SUN\"", cancellationToken: cancelled.Token));
    }
}

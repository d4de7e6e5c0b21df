using Microsoft.Extensions.DependencyInjection;
using Tessera.Abstractions;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class DependencyInjectionTests
{
    [TestMethod]
    public void AddTesseraEngineRegistersOneEngineThatLoadsTheConfiguredPlugins()
    {
        var temp = TestPaths.NewTempDir();
        try
        {
            var services = new ServiceCollection();
            services.AddTesseraEngine(o =>
            {
                o.UseDefaultPluginDirectory = false;
                o.UseEnvironmentPluginPath = false;
                o.CacheDirectory = temp;
                o.PluginDirectories.Add(TestPaths.Fixture("cpu"));
            });
            services.AddTesseraEngine(o => o.Fallback = FallbackPolicy.Allow);

            Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(TesseraEngine)), "registration is idempotent");
            using var provider = services.BuildServiceProvider();
            var engine = provider.GetRequiredService<TesseraEngine>();
            Assert.AreSame(engine, provider.GetRequiredService<TesseraEngine>());
            Assert.AreEqual(FallbackPolicy.Allow, engine.Options.Fallback, "the second call configured the same options");
            Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    [TestMethod]
    public void ConfigurationFileSetsPluginsFallbackAndSettingsAndRejectsUnknownKeys()
    {
        var temp = TestPaths.NewTempDir();
        try
        {
            var path = Path.Combine(temp, "tessera.json");
            File.WriteAllText(path, $$"""
                { // comments are allowed
                  "pluginPaths": ["{{TestPaths.Fixture("cpu")}}"],
                  "fallback": "allow",
                  "cacheDirectory": "cache",
                  "plugins": { "cpu": { "devices": 2 } },
                  "placement": { "ar": "cpu:0", "decoder": "cpu:1" }
                }
                """);
            var options = EngineConfigFile.Load(path);
            Assert.AreEqual(FallbackPolicy.Allow, options.Fallback);
            Assert.AreEqual(Path.Combine(temp, "cache"), options.CacheDirectory);
            Assert.AreEqual("2", options.PluginSettings["cpu"]["devices"]);
            Assert.AreEqual(TestPaths.Fixture("cpu"), options.PluginDirectories.Single());
            Assert.AreEqual("cpu:1", options.DeviceFor("decoder"));
            Assert.AreEqual("auto", options.DeviceFor("vq"));

            File.WriteAllText(path, """{ "placement": { "unet": "cpu:0" } }""");
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => EngineConfigFile.Load(path)).Message, "'placement.unet' is not a stage");
            File.WriteAllText(path, """{ "placement": { "ar": "gpu zero" } }""");
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => EngineConfigFile.Load(path)).Message, "use auto or kind:index");

            File.WriteAllText(path, """{ "fallbak": "allow" }""");
            var e = Assert.ThrowsExactly<InvalidDataException>(() => EngineConfigFile.Load(path));
            StringAssert.Contains(e.Message, "unknown key 'fallbak'");
            StringAssert.Contains(e.Message, path);

            File.WriteAllText(path, """{ "fallback": "sometimes" }""");
            StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => EngineConfigFile.Load(path)).Message, "allowed values: strict, allow");
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }
}

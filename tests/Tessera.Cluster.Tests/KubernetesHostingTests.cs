using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Hosting.Kubernetes;

namespace Tessera.Cluster.Tests;

/// <summary>
/// <c>tessera node --kubernetes</c> as far as this machine allows (no Kubernetes here): the silo it configures under
/// Orleans' Kubernetes hosting, with the pod's variables set in this process, and the one-line refusals outside a pod.
/// </summary>
[TestClass]
public sealed class KubernetesHostingTests
{
    private static readonly Dictionary<string, string> Pod = new()
    {
        [KubernetesHosting.PodNameVariable] = "tessera-ar-6d9f8b7c5-x2k4q",
        [KubernetesHosting.PodNamespaceVariable] = "tessera",
        [KubernetesHosting.PodIpVariable] = "10.244.1.17",
    };

    private static T Resolve<T>(NodeOptions options) where T : class
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo => TesseraNode.ConfigureMembership(silo, options));
        using var host = builder.Build();
        return host.Services.GetRequiredService<IOptions<T>>().Value;
    }

    private static void InPod(Action body)
    {
        var saved = Pod.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        try
        {
            foreach (var (k, v) in Pod) Environment.SetEnvironmentVariable(k, v);
            body();
        }
        finally { foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v); }
    }

    [TestMethod]
    public void UnderKubernetesHostingANodeIsNamedAfterItsPodAdvertisesThePodIpAndListensOnEveryAddress() => InPod(() =>
    {
        var options = new NodeOptions { Connection = ClusterConnection.Parse("redis://tessera-redis:6379"), Kubernetes = true, SiloPort = 11111, GatewayPort = 30000, Name = "shown-in-status" };
        var endpoints = Resolve<EndpointOptions>(options);
        Assert.AreEqual(IPAddress.Parse(Pod[KubernetesHosting.PodIpVariable]), endpoints.AdvertisedIPAddress);
        Assert.AreEqual(new IPEndPoint(IPAddress.Any, 11111), endpoints.SiloListeningEndpoint);
        Assert.AreEqual(new IPEndPoint(IPAddress.Any, 30000), endpoints.GatewayListeningEndpoint);
        Assert.AreEqual(Pod[KubernetesHosting.PodNameVariable], Resolve<SiloOptions>(options).SiloName, "Orleans' Kubernetes hosting requires the silo name to be the pod's");
        var ids = Resolve<ClusterOptions>(options);
        Assert.AreEqual((ClusterConnection.ServiceId, ClusterConnection.ClusterId), (ids.ServiceId, ids.ClusterId), "the fronts look for this service and cluster id");
        // Orleans' own validation (pod name, namespace, silo name = pod name) runs when the options are first read.
        Resolve<KubernetesHostingOptions>(options);
    });

    [TestMethod]
    public void WithoutKubernetesANodeAdvertisesTheAddressItWasGivenUnderItsOwnName() => InPod(() =>
    {
        var options = new NodeOptions { Connection = ClusterConnection.Parse("redis://10.0.0.2:6379"), Advertised = IPAddress.Parse("10.0.0.5"), SiloPort = 11111, GatewayPort = 30000, Name = "gpu-box-1" };
        Assert.AreEqual(IPAddress.Parse("10.0.0.5"), Resolve<EndpointOptions>(options).AdvertisedIPAddress);
        Assert.AreEqual("gpu-box-1", Resolve<SiloOptions>(options).SiloName);
    });

    private static string Refusal(string args, int exit, IReadOnlyDictionary<string, string?> environment)
    {
        var (code, _, stderr) = ClusterProcesses.Cli(args, Path.GetTempPath(), TimeSpan.FromSeconds(60), environment);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.AreEqual(1, lines.Length, $"tessera {args}: stderr is not one line:\n{stderr}");
        StringAssert.StartsWith(lines[0], "error: --");
        Assert.AreEqual(exit, code, stderr);
        return lines[0];
    }

    private static Dictionary<string, string?> NoPod() => Pod.Keys.ToDictionary(k => k, _ => (string?)null);

    [TestMethod]
    public void OutsideAPodTheNodeNamesTheMissingDownwardApiVariables()
    {
        var line = Refusal($"node --cluster redis://127.0.0.1:{ClusterProcesses.FreePort()} --kubernetes --stages ar", 2, NoPod());
        foreach (var v in Pod.Keys) StringAssert.Contains(line, v);
        StringAssert.Contains(line, "deploy/k8s/");
    }

    [TestMethod]
    public void WithThePodVariablesButNoKubernetesApiTheNodeSaysSo()
    {
        if (File.Exists("/var/run/secrets/kubernetes.io/serviceaccount/token")) Assert.Inconclusive("this test runs inside a Kubernetes pod; the refusal it checks cannot happen here");
        var env = Pod.ToDictionary(kv => kv.Key, kv => (string?)kv.Value);
        env["KUBERNETES_SERVICE_HOST"] = null;
        var line = Refusal($"node --cluster redis://127.0.0.1:{ClusterProcesses.FreePort()} --kubernetes", 1, env);
        StringAssert.Contains(line, "Kubernetes API");
        StringAssert.Contains(line, "deploy/k8s/rbac.yaml");
    }

    [TestMethod]
    [DataRow("--cluster localhost --kubernetes", "redis://host:port")]
    [DataRow("--cluster redis://127.0.0.1:6379 --kubernetes --advertise 10.0.0.5", "drop --advertise")]
    public void KubernetesHostingRefusesWhatCannotWorkInAPod(string args, string advice)
    {
        var env = Pod.ToDictionary(kv => kv.Key, kv => (string?)kv.Value);
        StringAssert.Contains(Refusal($"node {args}", 2, env), advice);
    }
}

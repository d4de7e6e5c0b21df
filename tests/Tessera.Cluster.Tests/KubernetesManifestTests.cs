using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Tessera.Cluster.Tests;

/// <summary>
/// deploy/k8s/ is not run here (no Kubernetes), so this checks what can be checked without one: the manifests parse,
/// every tessera option they pass exists in that command's --help, the AR and decoder deployments select their device
/// kind, the node pods carry what Orleans' Kubernetes hosting reads (labels, downward API, RBAC), and the names and
/// ports that tie the pieces together (Redis service, silo and gateway ports, the front's service) agree.
/// </summary>
[TestClass]
public sealed partial class KubernetesManifestTests
{
    private static string K8sDir => Path.Combine(ClusterProcesses.RepoRoot, "deploy", "k8s");

    private sealed record Doc(string File, YamlMappingNode Root)
    {
        public string Kind => Root.Str("kind");
        public string Name => Root.Map("metadata").Str("name");
    }

    private sealed record Container(Doc Deployment, YamlMappingNode Pod, YamlMappingNode Node)
    {
        public string[] Command => Node.Has("command") ? Node.Seq("command").Select(Scalar).ToArray() : [];
        public string[] Args => Node.Has("args") ? Node.Seq("args").Select(Scalar).ToArray() : [];
        public bool IsTessera => Command.FirstOrDefault() == "tessera";
        public string Subcommand => Args[0];
        /// <summary>The value after <paramref name="flag"/>, or null.</summary>
        public string? Value(string flag) => Array.IndexOf(Args, flag) is var i and >= 0 && i + 1 < Args.Length ? Args[i + 1] : null;
        public IEnumerable<string> Values(string flag) => Args.Select((a, i) => (a, i)).Where(x => x.a == flag && x.i + 1 < Args.Length).Select(x => Args[x.i + 1]);
        public IEnumerable<(string Name, int Port)> Ports => Node.Has("ports")
            ? Node.Seq("ports").Cast<YamlMappingNode>().Select(p => (p.Has("name") ? p.Str("name") : "", int.Parse(p.Str("containerPort"))))
            : [];
    }

    private static string Scalar(YamlNode n) => ((YamlScalarNode)n).Value ?? "";

    private static readonly Lazy<List<Doc>> AllDocs = new(() =>
    {
        var docs = new List<Doc>();
        foreach (var file in Directory.EnumerateFiles(K8sDir, "*.yaml").Order(StringComparer.Ordinal))
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(file)) stream.Load(reader);
            foreach (var d in stream.Documents)
                docs.Add(new Doc(Path.GetFileName(file), d.RootNode as YamlMappingNode ?? throw new AssertFailedException($"{file}: a document is not a mapping")));
        }
        return docs;
    });

    private static List<Doc> Docs => AllDocs.Value;

    private static List<Container> Containers() =>
        Docs.Where(d => d.Kind == "Deployment").SelectMany(d =>
        {
            var pod = d.Root.Map("spec").Map("template").Map("spec");
            return pod.Seq("containers").Cast<YamlMappingNode>().Select(c => new Container(d, pod, c));
        }).ToList();

    private static List<Container> Nodes() => Containers().Where(c => c.IsTessera && c.Subcommand == "node").ToList();

    [TestMethod]
    public void EveryManifestParsesNamesItsKindAndSaysItIsNotRunHere()
    {
        var files = Directory.EnumerateFiles(K8sDir, "*.yaml").Select(Path.GetFileName).ToList();
        Assert.IsTrue(files.Count >= 6, $"deploy/k8s has {files.Count} manifests");
        foreach (var file in files)
            StringAssert.Contains(File.ReadLines(Path.Combine(K8sDir, file!)).First(), "NOT RUN HERE", $"{file}'s first line says it was not run here");
        foreach (var d in Docs)
        {
            Assert.IsFalse(string.IsNullOrEmpty(d.Root.Str("apiVersion")), $"{d.File}: apiVersion");
            Assert.IsFalse(string.IsNullOrEmpty(d.Kind), $"{d.File}: kind");
            if (d.Kind is not ("Kustomization")) Assert.IsFalse(string.IsNullOrEmpty(d.Name), $"{d.File}: metadata.name");
            if (d.Kind is not ("Namespace" or "Kustomization")) Assert.AreEqual("tessera", d.Root.Map("metadata").Str("namespace"), $"{d.File}: {d.Kind} {d.Name}'s namespace");
        }
        var kustomization = Docs.Single(d => d.Kind == "Kustomization");
        CollectionAssert.AreEquivalent(files.Where(f => f != kustomization.File).ToList(), kustomization.Root.Seq("resources").Select(Scalar).ToList(),
            "kustomization.yaml lists every manifest");
        foreach (var kind in new[] { "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment" })
            Assert.IsTrue(Docs.Any(d => d.Kind == kind), $"no {kind} in deploy/k8s");
    }

    [GeneratedRegex(@"^\s+(?:-[A-Za-z?], )?(--[a-z][a-z0-9-]*)", RegexOptions.Multiline)]
    private static partial Regex HelpOption();

    [TestMethod]
    public void EveryTesseraOptionInTheManifestsIsAnOptionOfThatCommand()
    {
        var tessera = Containers().Where(c => c.IsTessera).ToList();
        CollectionAssert.AreEquivalent(new[] { "node", "serve" }, tessera.Select(c => c.Subcommand).Distinct().ToList(), "the manifests run nodes and fronts");
        var checkedFlags = 0;
        foreach (var group in tessera.GroupBy(c => c.Subcommand))
        {
            var (exit, help, stderr) = ClusterProcesses.Cli($"{group.Key} --help", Path.GetTempPath());
            Assert.AreEqual(0, exit, stderr);
            var options = HelpOption().Matches(help).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
            Assert.IsTrue(options.Contains("--cluster"), $"tessera {group.Key} --help lists no --cluster; the help format changed and this test reads nothing:\n{help}");
            foreach (var c in group)
                foreach (var flag in c.Args.Where(a => a.StartsWith("--", StringComparison.Ordinal)))
                {
                    Assert.IsTrue(options.Contains(flag), $"{c.Deployment.File}: 'tessera {group.Key} {flag}' is not an option of tessera {group.Key} (its options: {string.Join(" ", options.Order())})");
                    checkedFlags++;
                }
        }
        Assert.IsTrue(checkedFlags >= 10, $"only {checkedFlags} options checked");
    }

    [TestMethod]
    public void TheArAndTheDecoderDeploymentsServeTheirStageOnlyOnTheirDeviceKind()
    {
        var nodes = Nodes();
        foreach (var (stage, kind) in new[] { ("ar", "ascend"), ("decoder", "cuda") })
        {
            var serving = nodes.Where(n => (n.Value("--stages") ?? "ar,decoder").Split(',').Contains(stage)).ToList();
            Assert.AreEqual(1, serving.Count, $"one deployment serves the {stage} stage");
            var n = serving[0];
            CollectionAssert.AreEqual(new[] { stage }, n.Value("--stages")!.Split(','), $"{n.Deployment.File}: the {stage} deployment serves only {stage}");
            var device = n.Value("--device") ?? throw new AssertFailedException($"{n.Deployment.File}: no --device");
            Assert.AreEqual(kind, device.Split(':')[0], $"{n.Deployment.File}: device {device}");
            Assert.AreEqual(kind, n.Pod.Map("nodeSelector").Str("tessera.dev/device-kind"), $"{n.Deployment.File}: the nodeSelector picks {kind} machines");
            var limits = n.Node.Map("resources").Map("limits").Children.Keys.Select(Scalar).ToList();
            Assert.IsTrue(limits.Contains(kind == "cuda" ? "nvidia.com/gpu" : "huawei.com/Ascend910"), $"{n.Deployment.File}: asks its device plugin for a {kind} device ({string.Join(", ", limits)})");
        }
        Assert.AreEqual(2, nodes.Select(n => n.Deployment.Name).Distinct().Count(), "AR and decoder are separate deployments");
    }

    [TestMethod]
    public void NodePodsCarryWhatOrleansKubernetesHostingReads()
    {
        var nodes = Nodes();
        Assert.IsTrue(nodes.Count >= 2);
        foreach (var n in nodes)
        {
            var where = $"{n.Deployment.File} ({n.Deployment.Name})";
            Assert.IsTrue(n.Args.Contains("--kubernetes"), $"{where}: tessera node without --kubernetes");
            var env = n.Node.Seq("env").Cast<YamlMappingNode>().ToDictionary(e => e.Str("name"), e => e.Map("valueFrom").Map("fieldRef").Str("fieldPath"));
            Assert.AreEqual("metadata.name", env.GetValueOrDefault(KubernetesHosting.PodNameVariable), where);
            Assert.AreEqual("metadata.namespace", env.GetValueOrDefault(KubernetesHosting.PodNamespaceVariable), where);
            Assert.AreEqual("status.podIP", env.GetValueOrDefault(KubernetesHosting.PodIpVariable), where);

            var labels = n.Deployment.Root.Map("spec").Map("template").Map("metadata").Map("labels");
            Assert.AreEqual(ClusterConnection.ServiceId, labels.Str(KubernetesHosting.ServiceIdLabel), $"{where}: pod label {KubernetesHosting.ServiceIdLabel}");
            Assert.AreEqual(ClusterConnection.ClusterId, labels.Str(KubernetesHosting.ClusterIdLabel), $"{where}: pod label {KubernetesHosting.ClusterIdLabel}");
            var selector = n.Deployment.Root.Map("spec").Map("selector").Map("matchLabels");
            foreach (var (k, v) in selector.Children) Assert.AreEqual(Scalar(v), labels.Str(Scalar(k)), $"{where}: the selector matches the pod template");

            var ports = n.Ports.Select(p => p.Port).ToList();
            CollectionAssert.IsSubsetOf(new[] { int.Parse(n.Value("--silo-port") ?? "11111"), int.Parse(n.Value("--gateway-port") ?? "30000") }, ports, $"{where}: the container exposes the silo and gateway ports");

            // The service account may do what the hosting does with pods.
            var account = n.Pod.Str("serviceAccountName");
            Assert.IsTrue(Docs.Any(d => d.Kind == "ServiceAccount" && d.Name == account), $"{where}: service account {account} is defined");
            var roles = Docs.Where(d => d.Kind == "RoleBinding" && d.Root.Seq("subjects").Cast<YamlMappingNode>().Any(s => s.Str("kind") == "ServiceAccount" && s.Str("name") == account))
                .Select(b => b.Root.Map("roleRef").Str("name")).ToList();
            var verbs = Docs.Where(d => d.Kind == "Role" && roles.Contains(d.Name))
                .SelectMany(r => r.Root.Seq("rules").Cast<YamlMappingNode>())
                .Where(rule => rule.Seq("resources").Select(Scalar).Contains("pods") && rule.Seq("apiGroups").Select(Scalar).Contains(""))
                .SelectMany(rule => rule.Seq("verbs").Select(Scalar)).ToHashSet();
            CollectionAssert.IsSubsetOf(new[] { "get", "list", "watch", "patch", "delete" }, verbs.ToList(), $"{where}: {account} may get, list, watch, patch and delete pods");
        }
    }

    [TestMethod]
    public void EveryClusterConnectionNamesTheRedisServiceOnItsPort()
    {
        var tessera = Containers().Where(c => c.IsTessera).ToList();
        var connections = tessera.Select(c => (c, text: c.Value("--cluster") ?? throw new AssertFailedException($"{c.Deployment.File}: no --cluster"))).ToList();
        Assert.AreEqual(1, connections.Select(x => x.text).Distinct().Count(), "nodes and fronts share one membership");
        foreach (var (c, text) in connections)
        {
            var connection = ClusterConnection.Parse(text);
            Assert.IsFalse(connection.IsLocalhost, $"{c.Deployment.File}: localhost clustering in a cluster of pods");
            var (host, port) = (connection.RedisEndpoint![..connection.RedisEndpoint!.LastIndexOf(':')], int.Parse(connection.RedisEndpoint[(connection.RedisEndpoint.LastIndexOf(':') + 1)..]));
            var service = Docs.SingleOrDefault(d => d.Kind == "Service" && d.Name == host.Split('.')[0]) ?? throw new AssertFailedException($"{c.Deployment.File}: --cluster {text} names no Service in deploy/k8s");
            var servicePort = service.Root.Map("spec").Seq("ports").Cast<YamlMappingNode>().SingleOrDefault(p => int.Parse(p.Str("port")) == port)
                ?? throw new AssertFailedException($"{c.Deployment.File}: Service {service.Name} has no port {port}");
            var backing = BackingContainers(service);
            Assert.IsTrue(backing.Any(b => b.Node.Str("image").StartsWith("redis", StringComparison.Ordinal) && ResolvesPort(b, servicePort.Str("targetPort"), port)),
                $"Service {service.Name} port {port} reaches no redis container");
        }
    }

    [TestMethod]
    public void TheFrontsServiceReachesServeOnThePortItListensOn()
    {
        var fronts = Containers().Where(c => c.IsTessera && c.Subcommand == "serve").ToList();
        Assert.IsTrue(fronts.Count >= 1);
        foreach (var f in fronts)
        {
            Assert.AreEqual("0.0.0.0", f.Value("--host"), $"{f.Deployment.File}: the front must listen beyond loopback");
            var port = int.Parse(f.Value("--port") ?? "8080");
            Assert.IsTrue(f.Ports.Any(p => p.Port == port), $"{f.Deployment.File}: container port {port}");
            var services = Docs.Where(d => d.Kind == "Service" && BackingContainers(d).Contains(f)).ToList();
            Assert.AreEqual(1, services.Count, $"one Service selects the front {f.Deployment.Name}");
            var target = services[0].Root.Map("spec").Seq("ports").Cast<YamlMappingNode>().Single().Str("targetPort");
            Assert.IsTrue(ResolvesPort(f, target, port), $"Service {services[0].Name} targets {target}, not the front's port {port}");
            CollectionAssert.Contains(f.Values("--allowed-host").ToList(), services[0].Name, "the front answers Host: <its service name>");
        }
    }

    private static List<Container> BackingContainers(Doc service)
    {
        var selector = service.Root.Map("spec").Map("selector").Children.ToDictionary(k => Scalar(k.Key), v => Scalar(v.Value));
        return Containers().Where(c =>
        {
            var labels = c.Deployment.Root.Map("spec").Map("template").Map("metadata").Map("labels").Children.ToDictionary(k => Scalar(k.Key), v => Scalar(v.Value));
            return selector.All(s => labels.GetValueOrDefault(s.Key) == s.Value);
        }).ToList();
    }

    /// <summary>Whether a Service's targetPort (a number or a port name) is <paramref name="port"/> on the container.</summary>
    private static bool ResolvesPort(Container c, string targetPort, int port) =>
        int.TryParse(targetPort, out var n) ? n == port : c.Ports.Any(p => p.Name == targetPort && p.Port == port);
}

internal static class YamlNavigation
{
    public static bool Has(this YamlMappingNode node, string key) => node.Children.ContainsKey(new YamlScalarNode(key));

    public static YamlMappingNode Map(this YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlMappingNode m ? m : throw new AssertFailedException($"no mapping '{key}' at line {node.Start.Line}");

    public static YamlSequenceNode Seq(this YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlSequenceNode s ? s : throw new AssertFailedException($"no list '{key}' at line {node.Start.Line}");

    public static string Str(this YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlScalarNode s ? s.Value ?? "" : throw new AssertFailedException($"no value '{key}' at line {node.Start.Line}");
}

using System.CommandLine;
using System.Net;
using Tessera.Cluster;
using Tessera.Engine;
using Tessera.Pipeline;

namespace Tessera.Cli.Commands;

/// <summary><c>tessera node</c>: an Orleans silo serving this machine's stage workers in a Tessera cluster.</summary>
public static class NodeCommand
{
    public static Command Create()
    {
        var cluster = new Option<string>("--cluster") { Description = "Membership: redis://host:port (Redis) or localhost (development clustering, one machine).", Required = true };
        var stages = new Option<string>("--stages") { Description = "Stages this node serves: ar, decoder or ar,decoder.", DefaultValueFactory = _ => "ar,decoder" };
        var model = new Option<DirectoryInfo?>("--model") { Description = "Model package (default: the shipped one). Fronts use nodes with the same model hash only." };
        var siloPort = new Option<int>("--silo-port") { Description = "Port for node-to-node traffic.", DefaultValueFactory = _ => 11111 };
        var gatewayPort = new Option<int>("--gateway-port") { Description = "Port clients (tessera serve --cluster) connect to.", DefaultValueFactory = _ => 30000 };
        var advertise = new Option<string?>("--advertise") { Description = "IP address other machines reach this node on (Redis clustering). Default 127.0.0.1: one machine only." };
        var kubernetes = new Option<bool>("--kubernetes") { Description = "Run in a Kubernetes pod (Orleans Kubernetes hosting): the pod's name and IP (POD_NAME, POD_NAMESPACE, POD_IP), membership still in Redis. See deploy/k8s/." };
        var device = new Option<string?>("--device") { Description = "Device for the stages this node serves (default: the config file's placement, else auto)." };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most requests per AR step and images per decoder step on this node.", DefaultValueFactory = _ => 8 };
        var queue = new Option<int>("--queue") { Description = "Requests each stage worker may hold; beyond it the front tries another node, then answers 429.", DefaultValueFactory = _ => 64 };
        var membership = new Option<int?>("--membership-timeout") { Description = "Seconds a silent node stays a member (short for tests; default: Orleans' own, about a minute)." };
        var name = new Option<string?>("--name") { Description = "Node name in cluster status (default: host-pid)." };
        var cmd = new Command("node", "Join a Tessera cluster as a node (an Orleans silo) serving the AR stage, the decoder stage or both on this machine's devices.")
        {
            cluster, stages, model, siloPort, gatewayPort, advertise, kubernetes, device, maxBatch, queue, membership, name,
        };
        cmd.SetAction((parse, cancel) => CliErrors.RunAsync(async () =>
        {
            try
            {
                var inPod = parse.GetValue(kubernetes);
                if (inPod && parse.GetValue(advertise) is not null)
                    throw new ArgumentException("--advertise and --kubernetes do not go together: in a pod the node advertises POD_IP; drop --advertise.");
                var advertised = parse.GetValue(advertise) ?? "127.0.0.1";
                if (!IPAddress.TryParse(advertised, out var address))
                    throw new ArgumentException($"--advertise '{advertised}' is not an IP address; give this machine's address, e.g. 10.0.0.5.");
                var options = new NodeOptions
                {
                    Connection = ClusterConnection.Parse(parse.GetValue(cluster)),
                    Stages = parse.GetValue(stages)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).Distinct().ToList(),
                    SiloPort = parse.GetValue(siloPort), GatewayPort = parse.GetValue(gatewayPort), Advertised = address, Kubernetes = inPod,
                    MaxBatch = parse.GetValue(maxBatch), QueueCapacity = parse.GetValue(queue),
                    MembershipTimeout = parse.GetValue(membership) is { } m ? TimeSpan.FromSeconds(m) : null,
                    Name = parse.GetValue(name) ?? (inPod ? KubernetesHosting.PodName : null) ?? $"{Environment.MachineName}-{Environment.ProcessId}",
                };
                options.Validate();
                // Before the model loads (seconds): a wrong pod setup or an unreachable Redis is the operator's first mistake.
                if (inPod) KubernetesHosting.CheckInPod();
                await options.Connection.CheckReachableAsync(cancel);
                var engineOptions = GlobalOptions.Build(parse);
                var package = ModelPackage.Open(parse.GetValue(model)?.FullName ?? ModelPackage.DefaultDirectory());
                using var engine = new TesseraEngine(engineOptions);
                var d = parse.GetValue(device);
                using var generator = new ImageGenerator(engine, package, d ?? engineOptions.DeviceFor("ar"), d ?? engineOptions.DeviceFor("decoder"));
                await using var node = await TesseraNode.StartAsync(options, generator, Console.Error, cancel);
                Console.WriteLine($"tessera node {options.Name}: stages {string.Join(",", options.Stages)}, model {package.Manifest.Name} {node.Services.Metadata[NodeMetadata.ModelHash]}, " +
                    $"ar {generator.ArDevice}, decoder {generator.DecoderDevice}; silo port {options.SiloPort}, gateway port {options.GatewayPort}, cluster {options.Connection.Text}");
                Console.WriteLine("node ready");
                Console.Out.Flush();
                try { await Task.Delay(Timeout.Infinite, cancel); }
                catch (OperationCanceledException) { Console.Error.WriteLine("leaving the cluster"); }
                return 0;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        }));
        return cmd;
    }
}

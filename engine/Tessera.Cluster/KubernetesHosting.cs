using System.Net;
using Orleans.Hosting;

namespace Tessera.Cluster;

/// <summary>
/// <c>tessera node --kubernetes</c>: Orleans' Kubernetes hosting (Microsoft.Orleans.Hosting.Kubernetes) on top of
/// Redis membership. The node advertises the pod's IP and listens on every address; Orleans names the silo after
/// the pod and watches the pods labelled with the cluster's ids, so a deleted pod leaves membership at once instead of after
/// the probe timeout. The pod needs the downward-API variables below and a service account allowed to
/// get, list, watch, patch and delete pods (deploy/k8s/rbac.yaml).
/// </summary>
public static class KubernetesHosting
{
    public const string PodNameVariable = "POD_NAME";
    public const string PodNamespaceVariable = "POD_NAMESPACE";
    public const string PodIpVariable = "POD_IP";
    /// <summary>Pod labels Orleans' Kubernetes hosting selects silo pods by (values: <see cref="ClusterConnection.ServiceId"/>, <see cref="ClusterConnection.ClusterId"/>).</summary>
    public const string ServiceIdLabel = "orleans/serviceId";
    public const string ClusterIdLabel = "orleans/clusterId";

    /// <summary>The pod's name, for the node's name in cluster status.</summary>
    public static string? PodName => Environment.GetEnvironmentVariable(PodNameVariable);

    /// <summary>The pod's IP (POD_IP), the address the node advertises; a one-line error when it is not set.</summary>
    public static IPAddress PodIp => IPAddress.TryParse(Environment.GetEnvironmentVariable(PodIpVariable), out var ip) ? ip
        : throw new ArgumentException($"--kubernetes: {PodIpVariable} is '{Environment.GetEnvironmentVariable(PodIpVariable)}', not an IP address; set it from fieldRef status.podIP.");

    /// <summary>
    /// Fails with one line when this process is not in a pod set up as deploy/k8s/ sets one up: the downward-API
    /// variables are missing, POD_IP is not an address, or there is no in-cluster service account to reach the API with.
    /// </summary>
    public static void CheckInPod()
    {
        var missing = new[] { PodNameVariable, PodNamespaceVariable, PodIpVariable }.Where(v => string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(v))).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"--kubernetes needs {string.Join(", ", missing)} set in the pod from the downward API (fieldRef metadata.name, metadata.namespace, status.podIP, as deploy/k8s/tessera-ar.yaml does); outside Kubernetes leave --kubernetes off and pass --advertise.");
        _ = PodIp;
        if (!k8s.KubernetesClientConfiguration.IsInCluster())
            throw new IOException("--kubernetes: no Kubernetes API here (KUBERNETES_SERVICE_HOST is unset or there is no service-account token under /var/run/secrets/kubernetes.io/serviceaccount/); run the node in a pod with the service account of deploy/k8s/rbac.yaml, or leave --kubernetes off.");
    }

    /// <summary>Kubernetes hosting for a silo whose membership is already configured (Redis).</summary>
    public static void Configure(ISiloBuilder silo) => silo.UseKubernetesHosting();
}

package cluster_test

import (
	"context"
	"fmt"
	"log"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotorkit/rotor/internal/cluster"
	"github.com/rotorkit/rotor/internal/cluster/nodeagent"
	"github.com/rotorkit/rotor/internal/netns"
)

// A cluster in kube-proxy's nftables mode, a pod namespace for a server, and
// a look at the kubernetes Service through the admin client. (Not run by go
// test: it needs root and the components tools/kube-build.sh builds.)
func ExampleNew() {
	cfg := cluster.Config{ProxyMode: cluster.ProxyNFTables}
	if err := cluster.Available(cfg); err != nil {
		log.Fatal(err) // names what is missing, e.g. "run tools/kube-build.sh"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, cfg)
	if err != nil {
		log.Fatal(err) // names the component that failed, with its log's tail
	}
	defer c.Close()

	pod, err := c.AddPod(ctx, "web-1", "default")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := netns.Listen(pod.Netns, "tcp", ":8080") // a server "in" the pod
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	svc, err := c.Client().CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(svc.Spec.ClusterIP, pod.IP)
}

// Two Nodes whose node agents run the example's images, so that a
// Deployment's pods run as processes. (Not run by go test: it needs root,
// the components, and the binaries built beforehand.)
func ExampleCluster_StartNodeAgents() {
	ctx := context.Background()
	c, err := cluster.New(ctx, cluster.Config{Nodes: 2, NodeAgent: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	user := new(int64(65532)) // the images' USER
	err = c.StartNodeAgents(ctx, cluster.AgentOptions{
		Binary: "/tmp/bin/node-agent", // go build ./internal/cluster/cmd/node-agent
		Images: map[string]nodeagent.Image{
			"rotor-example-server": {Binary: "/tmp/bin/server", Entrypoint: "/server", UID: user, GID: user},
		},
	})
	if err != nil {
		log.Fatal(err) // names the agent that failed, with its log's tail
	}
	for _, n := range c.Nodes() {
		fmt.Println(n.Name, n.PodCIDR)
	}
}

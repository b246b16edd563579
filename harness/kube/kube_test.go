package kube

import (
	"encoding/json"
	"testing"
)

// crictl ps -a -o json, trimmed from a real run on the node.
const psJSON = `{"containers":[
 {"id":"a","podSandboxId":"s1","metadata":{"name":"sdn","attempt":0},"state":"CONTAINER_EXITED","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"}},
 {"id":"b","podSandboxId":"s1","metadata":{"name":"sdn","attempt":2},"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"}},
 {"id":"c","podSandboxId":"s2","metadata":{"name":"web","attempt":0},"state":"CONTAINER_CREATED","labels":{"io.kubernetes.pod.name":"web-pidreuse-node"}}
]}`

func TestRunningAndRestarts(t *testing.T) {
	var out struct {
		Containers []Container `json:"containers"`
	}
	if err := json.Unmarshal([]byte(psJSON), &out); err != nil {
		t.Fatal(err)
	}
	cs := out.Containers
	if !Running(cs, "sdn") {
		t.Error("sdn has a running container")
	}
	if Running(cs, "sdn", "web") {
		t.Error("web is only created, not running")
	}
	if got := Restarts(cs, "sdn"); got != 2 {
		t.Errorf("sdn restarts %d, want 2", got)
	}
	if cs[1].Pod() != "sdn-pidreuse-node" {
		t.Errorf("pod name %q: kubelet suffixes static pods with the node name", cs[1].Pod())
	}
}

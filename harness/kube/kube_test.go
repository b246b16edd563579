package kube

import (
	"encoding/json"
	"testing"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// nodecri containers, trimmed from a run on the node.
const containersJSON = `{"runtime":{"apiVersion":"v1"},"containers":[
 {"id":"a","sandboxID":"s1","name":"sdn","attempt":0,"state":"CONTAINER_EXITED","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"}},
 {"id":"b","sandboxID":"s1","name":"sdn","attempt":2,"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"},"pid":611},
 {"id":"c","sandboxID":"s2","name":"web","attempt":0,"state":"CONTAINER_CREATED","labels":{"io.kubernetes.pod.name":"web-pidreuse-node"}}
]}`

func TestRunningRestartsAndPIDs(t *testing.T) {
	var out agentapi.CRIContainers
	if err := json.Unmarshal([]byte(containersJSON), &out); err != nil {
		t.Fatal(err)
	}
	cs := out.Containers
	if !AllRunning(cs, "sdn") {
		t.Error("sdn has a running container")
	}
	if AllRunning(cs, "sdn", "web") {
		t.Error("web is only created, not running")
	}
	if got := Restarts(cs, "sdn"); got != 2 {
		t.Errorf("sdn restarts %d, want 2", got)
	}
	if cs[1].PodName() != "sdn-pidreuse-node" {
		t.Errorf("pod name %q: kubelet suffixes static pods with the node name", cs[1].PodName())
	}
	if pids := ContainerPIDs(cs); len(pids) != 1 || pids[0] != 611 {
		t.Errorf("PIDs %v, want the running container's only", pids)
	}
}

package agentapi

import "time"

// The `cri` steps read a CRI runtime's own view of the node (CRI-O's, in
// practice) over its gRPC socket, in whichever CRI API version the runtime
// speaks. They replace crictl inside the node: crictl >= 1.26 speaks only
// runtime.v1, while CRI-O 1.16/1.17 speak only runtime.v1alpha2.
//
// States are the CRI enum names, as crictl's JSON prints them
// ("SANDBOX_READY", "CONTAINER_RUNNING", ...). Fields that a runtime does not
// report are left empty (or omitted) rather than guessed.

// CRI API versions, as the gRPC package name the runtime answered on.
const (
	CRIv1       = "v1"
	CRIv1alpha2 = "v1alpha2"
)

// CRIRuntime is printed by `cri version` and heads every other `cri` step.
type CRIRuntime struct {
	Endpoint string `json:"endpoint"`
	// APIVersion is the CRI gRPC package the agent spoke: "v1" or
	// "v1alpha2" (v1 is asked first).
	APIVersion     string `json:"apiVersion"`
	RuntimeName    string `json:"runtimeName"`    // "cri-o"
	RuntimeVersion string `json:"runtimeVersion"` // "1.16.2"
	// ReportedAPIVersion is what the runtime says of itself, which need not
	// be the package it serves: CRI-O 1.16/1.17 say "v1alpha1" while serving
	// runtime.v1alpha2.
	ReportedAPIVersion string `json:"reportedApiVersion"`
}

// CRIPods is printed by `cri pods`: every pod sandbox, ready or not.
type CRIPods struct {
	Runtime   CRIRuntime   `json:"runtime"`
	Sandboxes []CRISandbox `json:"sandboxes"`
}

// CRISandbox is one pod sandbox: ListPodSandbox plus a verbose
// PodSandboxStatus.
type CRISandbox struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Attempt   int    `json:"attempt"`
	// State is SANDBOX_READY or SANDBOX_NOTREADY.
	State     string            `json:"state"`
	CreatedAt time.Time         `json:"createdAt,omitzero"`
	Labels    map[string]string `json:"labels,omitempty"`
	// NetworkMode is the sandbox's network namespace mode from its Linux
	// status: POD, NODE (hostNetwork) or CONTAINER; empty when the runtime
	// reported no Linux status.
	NetworkMode string `json:"networkMode,omitempty"`
	// HostNetwork is NetworkMode == NODE. CRI-O 1.34 still pins a netns
	// path for such pods: the host's.
	HostNetwork bool `json:"hostNetwork"`
	// NetnsPath is the network namespace path of the sandbox's runtime
	// spec, from the verbose status info (CRI-O 1.34 puts the spec there
	// and pins the netns at /var/run/netns/<uuid>). CRI-O 1.16/1.17 return
	// no verbose info for sandboxes, so it is empty there: their path is
	// /proc/<InfraPID>/ns/net when they do not manage the netns lifecycle,
	// a pin otherwise, and only their configuration tells which.
	NetnsPath string `json:"netnsPath,omitempty"`
	// InfraPID is the PID of the sandbox's infra (pause) process as the
	// runtime records it: from the verbose info when the runtime puts one
	// there, else (CRI-O 1.16/1.17) from CRI-O's inspect endpoint on the
	// same socket. After a reboot old CRI-O keeps the previous boot's PID
	// here. 0: none (CRI-O 1.34 drops the infra container by default).
	InfraPID int `json:"infraPID,omitempty"`
	// Error says what could not be read about this sandbox (its status
	// call failed, e.g. it was removed after the list); the fields above
	// that come from the list are still set.
	Error string `json:"error,omitempty"`
}

// CRIContainers is printed by `cri containers`: every container, running
// or not, with the PID of each running one.
type CRIContainers struct {
	Runtime    CRIRuntime     `json:"runtime"`
	Containers []CRIContainer `json:"containers"`
}

// CRIContainer is one container: ListContainers plus, for a running one, a
// verbose ContainerStatus for its PID.
type CRIContainer struct {
	ID        string `json:"id"`
	SandboxID string `json:"sandboxID"`
	Name      string `json:"name"`
	// Attempt is bumped by kubelet on each restart of the container.
	Attempt int `json:"attempt"`
	// State is CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED or
	// CONTAINER_UNKNOWN.
	State     string            `json:"state"`
	CreatedAt time.Time         `json:"createdAt,omitzero"`
	Image     string            `json:"image,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// PID is the container's init process on the node, for running
	// containers only (a stopped one's recorded PID names nobody, or
	// someone else). 0 when the runtime reported none.
	PID int `json:"pid,omitempty"`
	// Error says why a running container's PID could not be read.
	Error string `json:"error,omitempty"`
}

// ContainerRunning is the CRI state of a running container.
const ContainerRunning = "CONTAINER_RUNNING"

// AllRunning says whether every named container runs. Containers are
// named as in the pod spec.
func AllRunning(cs []CRIContainer, names ...string) bool {
	for _, n := range names {
		ok := false
		for _, c := range cs {
			ok = ok || (c.Name == n && c.State == ContainerRunning)
		}
		if !ok {
			return false
		}
	}
	return true
}

// PodName is the pod name kubelet gave the container.
func (c CRIContainer) PodName() string { return c.Labels["io.kubernetes.pod.name"] }

// Package crioguest names what the CRI-O/kubelet node looks like from the
// inside: its sockets, files, pods and addresses. The image builder
// (images/crionode) lays them out, the harness (harness/kube,
// harness/kubescenario) relies on them: both read them here, so they
// cannot drift apart. The image's config files spell some of them out;
// images/crionode's tests check they agree with these.
package crioguest

import "time"

// CRISocket is CRI-O's runtime endpoint, as kubelet and crictl name it.
const CRISocket = "unix:///var/run/crio/crio.sock"

// The pod image, built on the host (an OCI layout) and loaded into CRI-O's
// storage at the guest's first boot.
const (
	PodImage    = "localhost/pidreuse-pod:v1"
	PodImageDir = "/opt/pidreuse/images/pod"
)

// ImagesLoaded marks a node whose runtime's store holds the pod images:
// the image build writes it when it could load them itself (CRI-O's store,
// images.Inputs.Prime), else pidreuse-load-images.service at first boot.
const ImagesLoaded = "/var/lib/pidreuse/images-loaded"

// The squat: before crio.service starts, pidreuse-squat.service makes host
// processes take the PIDs listed in SquatFile and writes what happened to
// SquatResult (agentapi.Squat).
const (
	SquatFile   = "/var/lib/pidreuse/squat-pids"
	SquatResult = "/var/lib/pidreuse/squat-result.json"
	SquatUnit   = "pidreuse-squat.service"
)

// PIDFloorUnit, on the bug-era nodes, makes the first boot's pods get PIDs
// far above what the next boot reaches by itself (see
// images/crionode.Profile.PIDFloor).
const PIDFloorUnit = "pidreuse-pid-floor.service"

// The static pods: a regular pod and a hostNetwork daemon whose liveness
// probe hits the node's own address on SDNPort (the shape of openshift-sdn).
const (
	WebPod  = "web"
	SDNPod  = "sdn"
	SDNPort = 10256
	// SparePod is a second ordinary pod on the bug-era nodes, whose old
	// PID nobody takes: its DEL names a path that is gone.
	SparePod = "batch"
)

// The sdn pod's liveness probe (its manifest says so; a test holds them
// together). Every second (Kubernetes' least), not its default 10: a
// lo-UP scenario waits for two answered probes, and kubelet probes a new
// container at a random point of its first period, so the period is most
// of that wait. The timeout is longer than the period (kubelet runs one
// probe at a time, so a slow one delays the next rather than overlapping
// it): 2 s once failed a probe of a healthy node with four TCG guests on
// two cores, and every failed probe fails a lo-UP run. kubelet restarts
// the container at the first failed probe, not the third (its default):
// with lo down each probe waits its timeout out, so three were 9 s of
// every lo-DOWN run; a lo-UP run fails on any failed probe already (no
// liveness failure is one of its checks), so one failure to restart makes
// no healthy run fail that did not before. The first probe waits 2 s
// after the container starts: kubelet probes at its first tick after the
// start, and a podserver not yet listening refused it (a restart at the
// first boot, 10 s of back-off, and a lo-UP run's no-liveness-failure
// check failed by a probe before the DELs). podserver listens 0.05-0.2 s
// after CRI-O says it started (crio-1.17 journal and pod logs); each
// second of delay is a second of every lo-DOWN run, twice (the probe that
// fails, the restarted container's first answer).
const (
	SDNProbeInitialDelay     = 2 * time.Second
	SDNProbePeriod           = 1 * time.Second
	SDNProbeTimeout          = 3 * time.Second
	SDNProbeFailureThreshold = 1
)

// HealthzAnswered begins the line podserver writes to its container's log
// for each /healthz request it answers, followed by the node's UTC time in
// RFC 3339 and the caller's address: the harness counts the liveness
// probes that reached the sdn pod (harness/kube.ProbesAnswered).
const HealthzAnswered = "podserver: healthz answered at"

// PodLogDir is where kubelet keeps each container's log as
// <namespace>_<pod>_<uid>/<container>/<attempt>.log (kubelet 1.14 and
// later, whatever the runtime).
const PodLogDir = "/var/log/pods"

// NodeIP is QEMU user networking's guest address: the node's own address,
// which the sdn probe targets.
const NodeIP = "10.0.2.15"

// The units the harness watches.
const (
	CRIOUnit    = "crio"
	KubeletUnit = "kubelet"
)

// CrictlBinary is where the image installs crictl.
const CrictlBinary = "/usr/local/bin/crictl"

// NodeCRIBinary is where the image installs cmd/nodecri, which reads CRI-O
// for the harness.
const NodeCRIBinary = "/usr/local/bin/nodecri"

// `pidreuse odds` (images/crionode/odds.go lays these out, harness/odds
// reads them): the recording CNI plugin in CRI-O's plugin dir, last in the
// pod network's list, appends a record per CNI command to OddsRecordFile
// and reports the PIDs of OddsWatchFile, which the harness writes before
// each reboot.
const (
	CNIPluginDir     = "/usr/lib/cni"
	CNIRecordPlugin  = "pidreuse-record"
	PodNetworkConfig = "/etc/cni/net.d/10-pidreuse-pods.conflist"
	OddsRecordFile   = "/var/lib/pidreuse/odds/cni-record.jsonl"
	OddsWatchFile    = "/var/lib/pidreuse/odds/watch-pids"
	// OddsPodPrefix names the extra ordinary pods: odds-1, odds-2, ...
	OddsPodPrefix = "odds-"
)

// PIDFloorDone is the PID floor unit's stamp: when it exists, the unit
// does not run (ConditionPathExists=!…), and the node hands out PIDs from
// the bottom as any node does.
const PIDFloorDone = "/var/lib/pidreuse/pid-floor-done"

// The cri-dockerd node (Debian's Docker with Mirantis' cri-dockerd): its
// CRI socket and units, and the pause image cri-dockerd starts as each
// sandbox's infra container (podserver as /pause, which waits for
// SIGTERM). Docker runs the image's entrypoint, not a pause command of the
// runtime's configuration as CRI-O does, hence an image of its own.
const (
	CRIDockerdSocket = "unix:///run/cri-dockerd.sock"
	CRIDockerdUnit   = "cri-docker"
	DockerUnit       = "docker"
	PauseImage       = "localhost/pidreuse-pause:v1"
	PauseImageDir    = "/opt/pidreuse/images/pause"
)

// The containerd node: Debian's containerd and its CRI plugin.
const (
	ContainerdSocket = "unix:///run/containerd/containerd.sock"
	ContainerdUnit   = "containerd"
)

// The CNI gate of the stop-race scenario: a script the kube node images
// carry, which the harness puts in place of one plugin of the runtime's
// plugin dir (the real one moves to <plugin>.pidreuse-gated). The first
// DEL of the sandbox named in GateDir/armed writes what it was given to
// GateDir/held and waits at its start until GateDir/release exists (at
// most GateHoldMax), then runs the real plugin and writes GateDir/done.
const (
	GateScript = "/usr/local/lib/pidreuse/cni-gate"
	GateDir    = "/run/pidreuse/cni-gate"
	// GateRecordDir, when it exists, gets every DEL through the gate in
	// dels.jsonl; on disk, so it outlives a reboot.
	GateRecordDir = "/var/lib/pidreuse/cni-gate"
	GatedSuffix   = ".pidreuse-gated"
	// GateHoldMaxSeconds bounds the hold: a harness that died must not
	// leave the runtime's StopPodSandbox stuck for ever.
	GateHoldMaxSeconds = 180
)

// The runc gate of the join-race scenario: a script the kube node images
// carry, which the harness puts over RuncBinary (the real one moves to
// RuncBinary+GatedSuffix). The first `runc create` whose spec joins
// /proc/<RuncGateDir/armed>/ns/net writes what it joins to
// RuncGateDir/held, waits for RuncGateDir/release (at most
// GateHoldMaxSeconds), runs the real create and writes its exit code and
// the namespaces the container got to RuncGateDir/done.
const (
	RuncGateScript = "/usr/local/lib/pidreuse/runc-gate"
	RuncGateDir    = "/run/pidreuse/runc-gate"
	RuncBinary     = "/usr/sbin/runc"
)

package cri

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

func dial(t *testing.T, endpoint string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, endpoint)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// crio134 is a CRI-O 1.34 node: runtime.v1 only, specs in verbose info.
func crio134() *fakeRuntime {
	return &fakeRuntime{
		name: "cri-o", version: "1.34.0", reportedAPI: "v1",
		sandboxes: []fakeSandbox{
			{id: "9a3f", name: "web-node1", namespace: "default", uid: "u-web", ready: true,
				info: map[string]string{"info": crio134SandboxInfo}},
			{id: "0d6b", name: "spoofed-node1", namespace: "default", uid: "u-sp", ready: true,
				info: map[string]string{"info": crio134SpoofedSandboxInfo}},
			{id: "c4d1", name: "proxy-node1", namespace: "kube-system", uid: "u-proxy", ready: true, network: 2,
				info: map[string]string{"info": crio134HostNetSandboxInfo}},
		},
		containers: []fakeContainer{
			{id: "aa01", sandbox: "9a3f", name: "web", attempt: 2, state: 1,
				labels: map[string]string{"io.kubernetes.pod.name": "web-node1"},
				info:   map[string]string{"info": crio134ContainerInfo}},
			{id: "aa00", sandbox: "9a3f", name: "web", attempt: 1, state: 2,
				labels: map[string]string{"io.kubernetes.pod.name": "web-node1"},
				info:   map[string]string{"info": crio134ContainerInfo}},
		},
	}
}

// crio116 is a CRI-O 1.16/1.17 node: runtime.v1alpha2 only, no verbose
// info for sandboxes, plain-string info for containers, and the HTTP
// inspect API on the same socket.
func crio116() *fakeRuntime {
	return &fakeRuntime{
		name: "cri-o", version: "1.16.2", reportedAPI: "v1alpha1",
		sandboxes: []fakeSandbox{
			{id: "7c1e", name: "web-node1", namespace: "default", uid: "u-web", ready: true},
			{id: "51f0", name: "proxy-node1", namespace: "kube-system", uid: "u-proxy", network: 2},
		},
		containers: []fakeContainer{
			{id: "bb01", sandbox: "7c1e", name: "web", state: 1,
				labels: map[string]string{"io.kubernetes.pod.name": "web-node1"},
				info:   map[string]string{"pid": "2345", "sandboxId": "7c1e"}},
			{id: "bb02", sandbox: "51f0", name: "proxy", state: 0,
				info: map[string]string{"pid": "0", "sandboxId": "51f0"}},
		},
		inspect: map[string]int{"7c1e": 2301, "51f0": 2290},
	}
}

func TestV1Runtime(t *testing.T) {
	f := crio134()
	c := dial(t, serve(t, f, "v1", "v1alpha2"))
	want := agentapi.CRIRuntime{Endpoint: c.endpoint, APIVersion: "v1", RuntimeName: "cri-o", RuntimeVersion: "1.34.0", ReportedAPIVersion: "v1"}
	if got := c.Runtime(); got != want {
		t.Fatalf("Runtime = %+v, want %+v", got, want)
	}
	ctx := context.Background()

	pods, err := c.Pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Sandboxes) != 3 {
		t.Fatalf("sandboxes = %+v", pods.Sandboxes)
	}
	web, spoofed, proxy := pods.Sandboxes[0], pods.Sandboxes[1], pods.Sandboxes[2]
	if web.ID != "9a3f" || web.Name != "web-node1" || web.Namespace != "default" || web.UID != "u-web" || web.State != "SANDBOX_READY" || web.CreatedAt.IsZero() {
		t.Errorf("web sandbox list fields: %+v", web)
	}
	if web.NetnsPath != "/var/run/netns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11" || web.InfraPID != 1312 || web.HostNetwork || web.NetworkMode != "POD" {
		t.Errorf("web sandbox status fields: %+v", web)
	}
	if spoofed.NetnsPath != "/var/run/netns/0d6b3c52-5c1f-4f0e-8a43-2e5b47f1b7a2" || spoofed.InfraPID != 0 || spoofed.Error != "" {
		t.Errorf("spoofed sandbox: %+v", spoofed)
	}
	if !proxy.HostNetwork || proxy.NetworkMode != "NODE" || proxy.NetnsPath != "/var/run/netns/c4d1a2f0-3e9b-4d6a-b1f7-8e2a5c9d0f13" {
		t.Errorf("hostNetwork sandbox: %+v", proxy)
	}

	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Runtime != want || len(cs.Containers) != 2 {
		t.Fatalf("containers = %+v", cs)
	}
	running, exited := cs.Containers[0], cs.Containers[1]
	if running.ID != "aa01" || running.PID != 1377 || running.State != "CONTAINER_RUNNING" || running.Attempt != 2 ||
		running.SandboxID != "9a3f" || running.PodName() != "web-node1" || running.Image != "localhost/podserver:latest" {
		t.Errorf("running container: %+v", running)
	}
	if exited.ID != "aa00" || exited.PID != 0 || exited.State != "CONTAINER_EXITED" {
		t.Errorf("exited container: %+v", exited)
	}
	if !slices.Equal(f.statusCalled, []string{"aa01"}) {
		t.Errorf("status asked for %v, want only the running container", f.statusCalled)
	}
}

func TestFallsBackToV1alpha2(t *testing.T) {
	c := dial(t, serve(t, crio116(), "v1alpha2"))
	want := agentapi.CRIRuntime{Endpoint: c.endpoint, APIVersion: "v1alpha2", RuntimeName: "cri-o", RuntimeVersion: "1.16.2", ReportedAPIVersion: "v1alpha1"}
	if got := c.Runtime(); got != want {
		t.Fatalf("Runtime = %+v, want %+v", got, want)
	}
	ctx := context.Background()

	pods, err := c.Pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Sandboxes) != 2 {
		t.Fatalf("sandboxes = %+v", pods.Sandboxes)
	}
	web, proxy := pods.Sandboxes[0], pods.Sandboxes[1]
	// Old CRI-O sends no spec: no path, but the infra PID from inspect.
	if web.NetnsPath != "" || web.InfraPID != 2301 || web.HostNetwork || web.NetworkMode != "POD" || web.Error != "" {
		t.Errorf("web sandbox: %+v", web)
	}
	if !proxy.HostNetwork || proxy.State != "SANDBOX_NOTREADY" || proxy.InfraPID != 2290 {
		t.Errorf("hostNetwork sandbox: %+v", proxy)
	}

	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.Containers[0]; got.ID != "bb01" || got.PID != 2345 || got.Error != "" {
		t.Errorf("running container: %+v", got)
	}
	if got := cs.Containers[1]; got.State != "CONTAINER_CREATED" || got.PID != 0 {
		t.Errorf("created container: %+v", got)
	}
}

// A sandbox that old CRI-O's inspect API does not know, and one removed
// between the list and its status: both stay in the list, with Error.
func TestSandboxErrorsStayWithTheSandbox(t *testing.T) {
	f := crio116()
	delete(f.inspect, "51f0")
	f.sandboxes = append(f.sandboxes, fakeSandbox{id: "dead", name: "gone", gone: true})
	c := dial(t, serve(t, f, "v1alpha2"))
	pods, err := c.Pods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]agentapi.CRISandbox{}
	for _, sb := range pods.Sandboxes {
		byID[sb.ID] = sb
	}
	if sb := byID["51f0"]; sb.InfraPID != 0 || !strings.Contains(sb.Error, "404") || !sb.HostNetwork {
		t.Errorf("sandbox unknown to inspect: %+v", sb)
	}
	if sb := byID["dead"]; sb.Name != "gone" || !strings.Contains(sb.Error, "NotFound") {
		t.Errorf("removed sandbox: %+v", sb)
	}
	if sb := byID["7c1e"]; sb.InfraPID != 2301 || sb.Error != "" {
		t.Errorf("healthy sandbox: %+v", sb)
	}
}

// A runtime that does not say which namespace mode: neither mode nor
// hostNetwork is made up.
func TestNoLinuxStatus(t *testing.T) {
	f := crio134()
	f.sandboxes = f.sandboxes[:1]
	f.sandboxes[0].noLinux = true
	c := dial(t, serve(t, f, "v1"))
	pods, err := c.Pods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sb := pods.Sandboxes[0]; sb.NetworkMode != "" || sb.HostNetwork || sb.NetnsPath == "" {
		t.Errorf("sandbox without Linux status: %+v", sb)
	}
}

func TestNeitherVersion(t *testing.T) {
	_, err := Dial(context.Background(), serve(t, crio134()))
	if err == nil || !strings.Contains(err.Error(), "serves neither runtime.v1 nor runtime.v1alpha2") {
		t.Fatalf("Dial error = %v", err)
	}
}

func TestMissingSocket(t *testing.T) {
	endpoint := "unix://" + filepath.Join(t.TempDir(), "crio.sock")
	_, err := Dial(context.Background(), endpoint)
	want := "CRI runtime not reachable at " + endpoint + ": is its service (crio, cri-docker) running?"
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Dial error = %v, want %q wrapping ErrNotExist", err, want)
	}
}

// A socket file nobody listens on, as a crashed crio leaves it.
func TestStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "crio.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, sock)
	want := "CRI runtime not reachable at " + sock + ": is its service (crio, cri-docker) running?"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Dial error = %v, want %q", err, want)
	}
}

// A runtime that never answers ends the call at the context's deadline.
func TestTimeout(t *testing.T) {
	f := crio134()
	f.block = true
	c := dial(t, serve(t, f, "v1"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Pods(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pods error = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Pods took %s after a 300ms deadline", d)
	}
}

// The wait returns as soon as the named containers run, a container
// started during the wait included, and with the last list, not an error,
// when the time is up first.
func TestWaitRunning(t *testing.T) {
	f := crio134()
	endpoint := serve(t, f, "v1")
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.add(fakeContainer{id: "bb01", sandbox: "c4d1", name: "proxy", state: 1,
			labels: map[string]string{"io.kubernetes.pod.name": "proxy-node1"},
			info:   map[string]string{"info": crio134ContainerInfo}})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	cs, err := WaitRunning(ctx, endpoint, []string{"web", "proxy"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !agentapi.AllRunning(cs.Containers, "web", "proxy") {
		t.Fatalf("returned before both ran: %+v", cs.Containers)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("returned after %s, want soon after the second container started (300ms)", d)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cs, err = WaitRunning(ctx, endpoint, []string{"web", "never"}, 50*time.Millisecond)
	if err != nil || len(cs.Containers) == 0 || agentapi.AllRunning(cs.Containers, "web", "never") {
		t.Fatalf("time up: %+v, %v; want the last list and no error", cs.Containers, err)
	}
}

// A runtime that never came up is an error that says so.
func TestWaitRunningNoRuntime(t *testing.T) {
	endpoint := "unix://" + filepath.Join(t.TempDir(), "crio.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := WaitRunning(ctx, endpoint, []string{"web"}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("error = %v, want the runtime not reachable", err)
	}
}

func TestEndpointFromCrictlConfig(t *testing.T) {
	for in, want := range map[string]string{
		"runtime-endpoint: unix:///run/cri-dockerd.sock\nimage-endpoint: x\n": "unix:///run/cri-dockerd.sock",
		"timeout: 10\nruntime-endpoint: \"unix:///var/run/crio/crio.sock\"\n": "unix:///var/run/crio/crio.sock",
		"image-endpoint: unix:///x.sock\n":                                    "",
		"":                                                                    "",
	} {
		if got := EndpointFromCrictlConfig([]byte(in)); got != want {
			t.Errorf("EndpointFromCrictlConfig(%q) = %q, want %q", in, got, want)
		}
	}
}

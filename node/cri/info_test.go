package cri

import (
	"strings"
	"testing"
)

// Verbose info as CRI-O writes it. The JSON layouts are CRI-O's own:
// v1.34 server/sandbox_status.go createSandboxInfo and
// server/container_status.go containerInfo (a runtime-spec Spec under
// "runtimeSpec"); v1.16.2/v1.17.5 server/container_status.go (plain strings)
// and server/sandbox_status.go (no info at all). Specs are cut to the
// fields around the namespaces.
const (
	crio134SandboxInfo = `{"image":"localhost/pause:3.10","pid":1312,"runtimeSpec":{"ociVersion":"1.0.2-dev","process":{"user":{"uid":0,"gid":0},"args":["/pause"],"cwd":"/"},"root":{"path":"/var/lib/containers/storage/overlay/0c1e/merged","readonly":true},"hostname":"web-node1","annotations":{"io.kubernetes.cri-o.HostNetwork":"false"},"linux":{"cgroupsPath":"kubepods-besteffort-pod42.slice:crio:9a3f","namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"ipc","path":"/var/run/ipcns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"uts","path":"/var/run/utsns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"mount"}]}}}`
	// drop_infra_ctr=true (the 1.34 default): a spoofed infra container,
	// so no image and no pid, but the spec is still there.
	crio134SpoofedSandboxInfo = `{"runtimeSpec":{"ociVersion":"1.0.2-dev","hostname":"web-node1","annotations":{"io.kubernetes.cri-o.Spoofed":"true"},"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/0d6b3c52-5c1f-4f0e-8a43-2e5b47f1b7a2"},{"type":"ipc","path":"/var/run/ipcns/0d6b3c52-5c1f-4f0e-8a43-2e5b47f1b7a2"},{"type":"uts","path":"/var/run/utsns/0d6b3c52-5c1f-4f0e-8a43-2e5b47f1b7a2"},{"type":"mount"}]}}}`
	// A hostNetwork pod: 1.34 still pins a path, of the host's netns.
	crio134HostNetSandboxInfo = `{"runtimeSpec":{"ociVersion":"1.0.2-dev","hostname":"node1","annotations":{"io.kubernetes.cri-o.HostNetwork":"true"},"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/c4d1a2f0-3e9b-4d6a-b1f7-8e2a5c9d0f13"},{"type":"ipc","path":"/var/run/ipcns/c4d1a2f0-3e9b-4d6a-b1f7-8e2a5c9d0f13"},{"type":"uts","path":"/var/run/utsns/c4d1a2f0-3e9b-4d6a-b1f7-8e2a5c9d0f13"},{"type":"mount"}]}}}`
	crio134ContainerInfo      = `{"sandboxID":"9a3f","pid":1377,"runtimeSpec":{"ociVersion":"1.0.2-dev","process":{"args":["/podserver"]},"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"ipc","path":"/var/run/ipcns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"uts","path":"/var/run/utsns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"},{"type":"mount"}]}},"privileged":false}`
)

func TestParseInfo(t *testing.T) {
	tests := []struct {
		name    string
		info    map[string]string
		want    verboseInfo
		wantErr string
	}{
		{"crio 1.34 sandbox with infra", map[string]string{"info": crio134SandboxInfo},
			verboseInfo{PID: 1312, NetnsPath: "/var/run/netns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"}, ""},
		{"crio 1.34 sandbox, infra dropped", map[string]string{"info": crio134SpoofedSandboxInfo},
			verboseInfo{NetnsPath: "/var/run/netns/0d6b3c52-5c1f-4f0e-8a43-2e5b47f1b7a2"}, ""},
		{"crio 1.34 container", map[string]string{"info": crio134ContainerInfo},
			verboseInfo{PID: 1377, NetnsPath: "/var/run/netns/5b0e2c1d-7d7e-4b52-9a8c-1f0b8d3d6c11"}, ""},
		{"crio 1.16/1.17 container", map[string]string{"pid": "2345", "sandboxId": "7c1e"},
			verboseInfo{PID: 2345}, ""},
		{"crio 1.16/1.17 sandbox: no info", nil, verboseInfo{}, ""},
		{"spec without linux", map[string]string{"info": `{"pid":7,"runtimeSpec":{"ociVersion":"1.0.2"}}`},
			verboseInfo{PID: 7}, ""},
		{"network namespace without path (a new one)", map[string]string{"info": `{"runtimeSpec":{"linux":{"namespaces":[{"type":"network"}]}}}`},
			verboseInfo{}, ""},
		{"bad json", map[string]string{"info": `{"pid":`}, verboseInfo{}, "verbose info: unexpected end of JSON input"},
		{"bad pid", map[string]string{"pid": "abc"}, verboseInfo{}, `verbose info: pid "abc" is not a PID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInfo(tt.info)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseInfo error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseInfo: %v", err)
			}
			if got != tt.want {
				t.Fatalf("parseInfo = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	tests := []struct{ endpoint, want, wantErr string }{
		{"unix:///var/run/crio/crio.sock", "/var/run/crio/crio.sock", ""},
		{"/run/crio/crio.sock", "/run/crio/crio.sock", ""},
		{"tcp://127.0.0.1:10010", "", "only unix sockets"},
		{"unix://crio.sock", "", "must be absolute"},
		{"", "", "must be absolute"},
	}
	for _, tt := range tests {
		got, err := socketPath(tt.endpoint)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("socketPath(%q) error = %v, want %q", tt.endpoint, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("socketPath(%q) = %q, %v; want %q", tt.endpoint, got, err, tt.want)
		}
	}
}
